"""Shared CLI helpers: loading a film with overrides and printing validation errors."""

from __future__ import annotations

import sys
from pathlib import Path

from farm.spec.errors import FieldError, SpecError
from farm.spec.film import Film, resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import Storyboard, load_storyboard, parse_storyboard


def check_image(path: str) -> str:
    """'' if Pillow can decode the file, else what is wrong with it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, UnidentifiedImageError) as exc:
        return f"cannot decode image {path}: {exc}"
    return ""


def load_film(path: str | Path, *, model: str | None = None, steps: int | None = None) -> Film:
    """Storyboard file -> resolved Film; SpecError lists every problem (flags win)."""
    from farm.model.loader import resolve_model

    board = load_storyboard(path)
    if steps is not None:
        data = board.model_dump(exclude_unset=True)
        data["steps"] = steps
        board = _reparse(data, "--steps")
    ref = model or board.model
    try:
        source = resolve_model(ref)
    except ValueError as exc:
        raise SpecError([FieldError("model" if model is None else "--model", str(exc))]) from None
    film = resolve_film(board, profile_for(source.family), model=ref, base_dir=Path(path).parent)
    errors = [FieldError(f"scenes[{s.index}].image", msg) for s in film.scenes
              if s.image and (msg := check_image(s.image))]
    if errors:
        raise SpecError(errors)
    return film


def _reparse(data: dict, flag: str) -> Storyboard:
    try:
        return parse_storyboard(data)
    except SpecError as exc:
        raise SpecError([FieldError(flag if e.path == flag.lstrip("-") else e.path, e.message)
                         for e in exc.errors]) from None


def print_spec_error(exc: SpecError, source: str) -> None:
    print(f"error: {source} is not a valid film ({len(exc.errors)} problem(s)):", file=sys.stderr)
    for e in exc.errors:
        print(f"  {e}", file=sys.stderr)
