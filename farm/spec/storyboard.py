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

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from farm.spec.adapters import DraftSpec, LoraSpec
from farm.spec.continuity import check_start_from
from farm.spec.delivery import DeliverySpec
from farm.spec.dialogue import DialogueSpec, check_dialogues, media_of
from farm.spec.document import parse_document
from farm.spec.errors import FieldError, SpecError, format_path

SceneId = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=64)]
# A character (or place) of the film's bible: a word scenes can name it by.
CharacterId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=32)]
Continuity = Literal["single", "windows", "chain"]
# A media input: a path relative to the storyboard file, or a URL (fsspec: s3://, gs://,
# http(s)://, file://, ...).
Media = Annotated[str, Field(min_length=1)]
Solver = Literal["unipc", "euler"]
# `speed:` as written ("exact" or a mapping); farm.spec.speed checks it with the model's
# experts, so its errors can name them and the allowed values.
SpeedValue = Any


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
    # Media inputs (farm.spec.film.MEDIA_FIELDS says which family takes which):
    # first and last frame; driving pose / face video (Animate); control video and its
    # mask (VACE: white = generate, black = keep); audio (muxed into the deliverable).
    image: Media | None = None
    last_image: Media | None = None
    pose_video: Media | None = None
    face_video: Media | None = None
    control_video: Media | None = None
    mask: Media | None = None
    audio: Media | None = None
    # Reference images (a character sheet): ids of the film's `references` or
    # `characters` (all of that character's images), or paths / URLs.
    references: list[Media] | None = None
    # Chain mode: frames each clip takes from the end of the previous one (1 or 5 for
    # Animate and VACE; default the family's first).
    carry_frames: Annotated[int, Field(ge=1)] | None = None
    # Start from the last frame of an earlier scene, as from `image:` that frame
    # (farm.spec.continuity; families that take a first frame).
    start_from: SceneId | None = None
    # Written by `reelfarm direct` (farm.story): the prompt before extension and bible
    # injection (rendering reads `prompt`).
    original_prompt: Annotated[str, Field(min_length=1)] | None = None
    # Ids of the film's `characters` in this scene: their descriptions, images and LoRAs
    # reach it as its family can take them (farm.spec.characters). `cast:` is its former
    # name (storyboards `reelfarm direct` wrote before): read as `characters`.
    characters: list[CharacterId] | None = Field(
        None, validation_alias=AliasChoices("characters", "cast"))
    # LoRA adapters of this scene, on top of the film's (farm.spec.adapters).
    loras: list[LoraSpec] | None = None
    # Step caching (farm.spec.speed): "exact" or a cache, checked when the film resolves.
    speed: SpeedValue = None
    # A conversation (speech-to-video): one shot per turn (farm.spec.dialogue).
    dialogue: DialogueSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_cast_field(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cast" in data and "characters" in data:
            raise ValueError("give `characters` only (`cast` is its former name), not both")
        return data


class Character(_Strict):
    """A recurring character or place, described once for every scene that names it."""

    id: CharacterId
    # How prompts name it ("Mira"); the id matches too, `_` read as a space.
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    # What it looks like, into the prompt of every scene naming it. May be left out when
    # its images or LoRAs carry it (a character LoRA trained on its name: the prompt
    # names it, and a sentence the LoRA never saw could only blur it).
    description: Annotated[str, Field(min_length=1)] | None = None
    # Reference images (paths relative to the storyboard file).
    references: list[Annotated[str, Field(min_length=1)]] = []
    # LoRA adapters of the character, active in every scene that names it (after the
    # film's; a scene's own entry of the same name replaces it).
    loras: list[LoraSpec] = []
    # Families whose `image` is a first frame (I2V, TI2V, VACE): open every scene that names
    # the character and gives no `image` / `start_from` on its first reference image.
    first_frame: bool = False

    @model_validator(mode="after")
    def _something_to_bring(self) -> Character:
        if self.description is None and not self.references and not self.loras:
            raise ValueError(f"character {self.id!r} needs a `description`, `references` or "
                             "`loras`: what scenes naming it should show")
        return self


class Reference(_Strict):
    """A reference image shared by id across scenes (e.g. a prop or a character sheet)."""

    id: CharacterId
    image: Media


class MediaRights(_Strict):
    """Who holds the rights to a media input or gave consent to its use (the person in a
    photo, the speaker of a voice), and where the agreement is kept. Recorded in the
    content credentials of every deliverable made from the file; a server run with
    --require-rights refuses photos, videos and voices without one."""

    media: Media
    holder: Annotated[str, Field(min_length=1, max_length=1024)]
    reference: Annotated[str, Field(min_length=1, max_length=1024)]


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
    references: list[Reference] = []
    rights: list[MediaRights] = []
    direct: DirectSpec | None = None
    # The edit's frame rate and size (farm.spec.delivery): a conformed mp4 and image
    # sequence beside the render's.
    delivery: DeliverySpec | None = None
    # LoRA adapters of every scene, and rendering as a few-step draft (farm.spec.adapters).
    loras: list[LoraSpec] = []
    draft: DraftSpec | None = None
    # Every scene's step caching unless the scene sets its own (farm.spec.speed).
    speed: SpeedValue = None


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
    errors = (_check_scene_ids(board) + _check_cast(board, data) + _check_reference_ids(board)
              + _check_rights(board) + check_start_from(board.scenes) + check_dialogues(board))
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
    return (part in {"float", "int", "str"}
            or part.startswith(("dict[", "function-", "constrained-")))


def _first_index(items, field: str, noun: str) -> tuple[dict[str, int], list[FieldError]]:
    """Id -> index of its first item in `items` (the list at `field`), and an error for
    every later item repeating an id."""
    first: dict[str, int] = {}
    errors = []
    for i, item in enumerate(items):
        if item.id in first:
            errors.append(FieldError(f"{field}[{i}].id",
                                     f"duplicate {noun} id {item.id!r} "
                                     f"(also {field}[{first[item.id]}])"))
        first.setdefault(item.id, i)
    return first, errors


def _check_scene_ids(board: Storyboard) -> list[FieldError]:
    return _first_index(board.scenes, "scenes", "scene")[1]


def _check_cast(board: Storyboard, data: dict[str, Any]) -> list[FieldError]:
    known, errors = _first_index(board.characters, "characters", "character")
    for i, scene in enumerate(board.scenes):
        # named as written: `cast` in storyboards of before `characters`
        key = "cast" if "cast" in (data["scenes"][i] or {}) else "characters"
        for j, cid in enumerate(scene.characters or ()):
            if cid not in known:
                errors.append(FieldError(f"scenes[{i}].{key}[{j}]", (
                    f"{cid!r} is not in `characters`; "
                    f"known: {', '.join(sorted(known)) or 'none'}")))
    errors += [FieldError(f"characters[{k}].first_frame", (
        f"{ch.id!r} has no `references`: a first frame is its first reference image"))
        for k, ch in enumerate(board.characters) if ch.first_frame and not ch.references]
    return errors


def _check_reference_ids(board: Storyboard) -> list[FieldError]:
    """Reference ids are unique and distinct from character ids; a scene entry that looks
    like an id (no '.', '/' or ':') must name one (else it is a path or URL)."""
    characters = {ch.id for ch in board.characters}
    known: dict[str, int] = {}
    errors = []
    for i, ref in enumerate(board.references):
        if ref.id in known or ref.id in characters:
            other = f"references[{known[ref.id]}]" if ref.id in known else "a character"
            errors.append(FieldError(f"references[{i}].id",
                                     f"duplicate id {ref.id!r} (also {other})"))
        known.setdefault(ref.id, i)
    ids = sorted(set(known) | characters)
    for i, scene in enumerate(board.scenes):
        for j, entry in enumerate(scene.references or ()):
            if is_reference_id(entry) and entry not in known and entry not in characters:
                errors.append(FieldError(f"scenes[{i}].references[{j}]", (
                    f"{entry!r} is not the id of a reference or character; known: "
                    f"{', '.join(ids) or 'none'} "
                    f"(a file needs a suffix or a path, e.g. ./{entry})")))
    return errors


def media_entries(board: Storyboard) -> list[str]:
    """Every media file the film names, as written (scene fields, reference images)."""
    out = [r.image for r in board.references] + [i for c in board.characters for i in c.references]
    for scene in board.scenes:
        for name in ("image", "last_image", "pose_video", "face_video", "control_video", "mask",
                     "audio"):
            if (value := getattr(scene, name)) is not None:
                out.append(value)
        out += [r for r in scene.references or () if not is_reference_id(r)]
        out += media_of(scene.dialogue) if scene.dialogue else []
    return list(dict.fromkeys(out))


def _check_rights(board: Storyboard) -> list[FieldError]:
    used = media_entries(board)
    return [FieldError(f"rights[{i}].media", (
        f"{r.media!r} is not a media input of this film; its inputs: "
        f"{', '.join(used) or 'none'}")) for i, r in enumerate(board.rights) if r.media not in used]


def is_reference_id(entry: str) -> bool:
    """A scene `references` entry naming an id rather than a path or URL."""
    return not any(c in entry for c in "./:\\")
