"""Shared CLI helpers: loading a film (storyboard or timeline) with overrides and printing
validation errors."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.model import hub
from farm.spec.errors import FieldError, SpecError
from farm.spec.film import Film, resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import Storyboard, load_storyboard, parse_storyboard
from farm.spec.timeline import Cut, cut_of_scenes, is_timeline, load_timeline

if TYPE_CHECKING:
    from farm.model.loader import ModelSource


@dataclass(frozen=True, slots=True)
class LoadedFilm:
    """A film as the CLI loaded it: the resolved film, the storyboard it came from (flags
    applied), its picture cut (gaps and timecode, from a timeline; none for storyboards)
    and its model, resolved once (a Hub repo id: its snapshot in the cache)."""

    film: Film
    board: Storyboard
    cut: Cut
    source: Path
    model: ModelSource


def add_film_flags(p) -> None:
    """The film settings a command line may override (they win over the file)."""
    p.add_argument("--model", help="tiny | tiny-<family> | toy | a diffusers-format model folder "
                                   "| a Hugging Face repo id OWNER/NAME[@REVISION] in the local "
                                   "cache (overrides the storyboard's model)")
    p.add_argument("--steps", type=int, help="solver steps (overrides the storyboard)")
    p.add_argument("--width", type=int, help="frame width (overrides the storyboard / timeline)")
    p.add_argument("--height", type=int, help="frame height (overrides the storyboard / timeline)")
    p.add_argument("--fps", type=int, help="frames per second (overrides the storyboard / "
                                           "timeline; an EDL is read at this rate, default 24)")


def film_flags(args) -> dict:
    return {k: getattr(args, k, None) for k in ("model", "steps", "width", "height", "fps")}


def load_from_args(args) -> LoadedFilm | None:
    """`args.storyboard` with the film flags, or None after printing every problem."""
    try:
        # the Hugging Face cache by the environment of the command, read here at its edge
        return load_source(args.storyboard, **film_flags(args),
                           hub_cache=hub.cache_from_env(os.environ))
    except SpecError as exc:
        print_spec_error(exc, args.storyboard)
        return None


def load_film(path: str | Path, **flags) -> Film:
    """Storyboard or timeline file -> resolved Film; SpecError lists every problem (flags win)."""
    return load_source(path, **flags).film


def load_board(path: str | Path, **flags) -> tuple[Storyboard, Cut | None, Any]:
    """(storyboard, the timeline's cut or None, how to rename timeline error paths) of a
    storyboard or timeline file, with the command line's film flags applied."""
    overrides = {k: v for k, v in flags.items() if v is not None and k != "model"}
    cut, rename = None, list
    if is_timeline(path):
        imported = load_timeline(path, overrides)
        board, cut, rename, overrides = imported.board, imported.cut, imported.rename, {}
    else:
        board = load_storyboard(path)
    if flags.get("model") is not None:
        overrides["model"] = flags["model"]
    if overrides:
        board = _reparse({**board.model_dump(exclude_unset=True), **overrides}, overrides)
    return board, cut, rename


def load_source(path: str | Path, *, model: str | None = None, steps: int | None = None,
                width: int | None = None, height: int | None = None,
                fps: int | None = None, hub_cache: Path | None = None) -> LoadedFilm:
    """Like load_film, keeping the storyboard and the cut (what the deliverables need).
    `hub_cache`: where a model named by Hugging Face repo id is (None: huggingface_hub's
    default)."""
    from farm.model.loader import resolve_model

    board, cut, rename = load_board(path, steps=steps, width=width, height=height, fps=fps)
    ref = model or board.model
    try:
        source = resolve_model(ref, hub_cache)
    except ValueError as exc:
        raise SpecError(rename([FieldError("model" if model is None else "--model",
                                           str(exc))])) from None
    try:
        film = resolve_film(board, profile_for(source.family), model=ref,
                            base_dir=Path(path).parent)
    except SpecError as exc:
        raise SpecError(rename(exc.errors)) from None
    from farm.media.probe import check_media
    from farm.model.footprint import edge_checks
    from farm.spec.limits import Limits

    errors = check_media(film)  # every input decoded: nothing corrupt reaches a worker
    errors += edge_checks(film, source, Limits())
    if errors:
        raise SpecError(rename(errors))
    cut = cut or cut_of_scenes([(s.id, s.num_frames) for s in film.scenes])
    return LoadedFilm(film, board, cut, Path(path), source)


def _reparse(data: dict, flags: dict) -> Storyboard:
    try:
        return parse_storyboard(data)
    except SpecError as exc:
        raise SpecError([FieldError(f"--{e.path}" if e.path in flags else e.path, e.message)
                         for e in exc.errors]) from None


def print_spec_error(exc: SpecError, source: str) -> None:
    print(f"error: {source} is not a valid film ({len(exc.errors)} problem(s)):", file=sys.stderr)
    for e in exc.errors:
        print(f"  {e}", file=sys.stderr)
