"""Storyboard: the user's description of a film, parsed and checked at the edge.

Two stages, each collecting every error before raising one SpecError:

1. `parse_storyboard(data)`: the schema (types, ranges, unknown fields, ids).
2. `resolve_film(storyboard, profile)`: the rules of the chosen model family (frame
   counts 4k+1, sizes, guidance per expert, continuity), giving a `Film` whose scenes
   carry no optional fields any more.

Nothing is ever rounded or clamped: a value that breaks a rule is an error that names the
field and the nearest valid values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from farm.spec.document import parse_document
from farm.spec.errors import FieldError, SpecError, format_path

SceneId = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=64)]
# A character (or place) of the film's bible: a word scenes can name it by.
CharacterId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=32)]
Continuity = Literal["single", "windows", "chain"]
Solver = Literal["unipc", "euler"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SceneSpec(_Strict):
    """One scene (a shot): one prompt, one camera; hard cuts between scenes."""

    id: SceneId
    prompt: Annotated[str, Field(min_length=1)]
    negative_prompt: str | None = None
    frames: Annotated[int, Field(ge=1)] | None = None
    seconds: Annotated[float, Field(gt=0)] | None = None
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    guidance: Annotated[float, Field(ge=0)] | dict[str, Annotated[float, Field(ge=0)]] | None = None
    continuity: Continuity | None = None
    window: Annotated[int, Field(ge=1)] | None = None
    overlap: Annotated[int, Field(ge=1)] | None = None
    # First frame (image-to-video families); a path relative to the storyboard file.
    image: Annotated[str, Field(min_length=1)] | None = None
    # Written by `reelfarm direct` (farm.story); rendering reads only `prompt`:
    # the prompt before extension and bible injection, the bible ids the scene names
    # (injected into `prompt`), and those characters' reference images (for the
    # conditioning inputs; paths relative to the storyboard file).
    original_prompt: Annotated[str, Field(min_length=1)] | None = None
    cast: list[CharacterId] | None = None
    references: list[Annotated[str, Field(min_length=1)]] | None = None


class Character(_Strict):
    """A recurring character or place, described once for every scene that names it."""

    id: CharacterId
    # How prompts name it ("Mira"); the id matches too, `_` read as a space.
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    description: Annotated[str, Field(min_length=1)]
    # Reference images (paths relative to the storyboard file).
    references: list[Annotated[str, Field(min_length=1)]] = []


class DirectSpec(_Strict):
    """Settings of the story writer (`reelfarm direct`); rendering ignores them."""

    # Opt-in: rewrite each scene prompt Wan-style (subject, motion, camera, lighting).
    extend_prompts: bool = False
    logline: str | None = None
    style: str | None = None


class Storyboard(_Strict):
    """A film: shared settings and an ordered list of scenes."""

    title: Annotated[str, Field(min_length=1)]
    fps: Annotated[int, Field(ge=1, le=240)]
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]
    model: Annotated[str, Field(min_length=1)] = "tiny"
    steps: Annotated[int, Field(ge=1, le=1000)] | None = None
    shift: Annotated[float, Field(gt=0)] | None = None
    solver: Solver | None = None
    negative_prompt: str = ""
    window: Annotated[int, Field(ge=1)] | None = None
    overlap: Annotated[int, Field(ge=1)] | None = None
    scenes: Annotated[list[SceneSpec], Field(min_length=1)]
    characters: list[Character] = []
    direct: DirectSpec | None = None


def load_storyboard(path: str | Path) -> Storyboard:
    """Read a YAML or JSON storyboard file and check its schema."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([FieldError("", f"cannot read {path}: {exc}")]) from None
    return parse_storyboard(parse_document(text, path.suffix.lower()))


def parse_storyboard(data: Any) -> Storyboard:
    """Schema check of a parsed document; every problem is listed by field path."""
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "an empty document"
        raise SpecError([FieldError("", f"a storyboard must be a mapping of fields, got {kind}")])
    try:
        board = Storyboard.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_from_pydantic(e) for e in exc.errors()]) from None
    errors = _check_scene_ids(board) + _check_cast(board)
    if errors:
        raise SpecError(errors)
    return board


def _from_pydantic(err: Any) -> FieldError:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and _is_union_tag(p))]
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field (not part of the storyboard format)"
    elif err["type"] == "string_pattern_mismatch":
        msg = "must contain only lowercase letters, digits, '_' and '-'"
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "literal_error":
        msg = f"{msg}; got {err.get('input')!r}"
    return FieldError(format_path(loc), msg)


def _is_union_tag(part: str) -> bool:
    # pydantic names union branches in error locations ("float", "dict[str,...]").
    return part in {"float", "int", "str"} or part.startswith(("dict[", "function-", "constrained-"))


def _check_scene_ids(board: Storyboard) -> list[FieldError]:
    seen: dict[str, int] = {}
    errors = []
    for i, scene in enumerate(board.scenes):
        if scene.id in seen:
            errors.append(FieldError(f"scenes[{i}].id",
                                     f"duplicate scene id {scene.id!r} (also scenes[{seen[scene.id]}])"))
        seen.setdefault(scene.id, i)
    return errors


def _check_cast(board: Storyboard) -> list[FieldError]:
    known: dict[str, int] = {}
    errors = []
    for i, ch in enumerate(board.characters):
        if ch.id in known:
            errors.append(FieldError(f"characters[{i}].id",
                                     f"duplicate character id {ch.id!r} (also characters[{known[ch.id]}])"))
        known.setdefault(ch.id, i)
    for i, scene in enumerate(board.scenes):
        for j, cid in enumerate(scene.cast or ()):
            if cid not in known:
                errors.append(FieldError(f"scenes[{i}].cast[{j}]", (
                    f"{cid!r} is not in `characters`; known: {', '.join(sorted(known)) or 'none'}")))
    return errors
