"""A scene's media inputs: which family takes which, where each file is, and the rules.

    field          kind            families that use it
    image          image           i2v-a14b, ti2v-5b, vace-a14b   first frame of the scene
                                   s2v-14b                         the character's reference photo
    last_image     image           i2v-a14b, vace-a14b            last frame (FLF2V)
    references     images          animate-14b (1), vace-a14b      character sheet, props
    pose_video     video           animate-14b, s2v-14b            driving motion
    face_video     video           animate-14b                     driving expression
    control_video  video           vace-a14b                       depth / pose / source
    mask           image or video  vace-a14b                       white: generate, black: keep
    audio          audio           every family                    muxed into the deliverable;
                                                                   s2v-14b: drives the scene

Locations are URLs (anything with "://", read through fsspec) or paths relative to the
storyboard file; a server resolves media names (`media/{sha256}`) to its media store
instead (the `Locator` it passes). Decoding is checked later (farm.media.probe, before any
model work); here only the rules and that local files exist (pure: no media libraries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from farm.spec.continuity import takes_first_frame
from farm.spec.errors import FieldError
from farm.spec.profiles import PROFILES, ModelProfile
from farm.spec.storyboard import SceneSpec, Storyboard, is_reference_id

MEDIA_FIELDS = ("image", "last_image", "references", "pose_video", "face_video",
                "control_video", "mask", "audio")
# What each field takes, by the kind a file decodes as (farm.media.library sniffs it).
FIELD_KINDS = {"image": ("image",), "last_image": ("image",), "references": ("image",),
               "pose_video": ("video",), "face_video": ("video",), "control_video": ("video",),
               "mask": ("image", "video"), "audio": ("audio",),
               # LoRA adapters (farm.spec.adapters): a safetensors file, not a decoded input
               "loras": ("adapter",)}
# Inputs taken of a person (a photo, a video, a voice) that a server run with
# --require-rights only accepts with a rights statement; a mask is drawn, not recorded.
PERSONAL = frozenset(FIELD_KINDS) - {"mask", "loras"}
# Every family takes audio: it is decoded, aligned to the frames and muxed (s2v-14b, our
# Wan2.2-S2V adapter, also generates from it).
ANY_FAMILY = frozenset({"audio"})

# (field, as written) -> (location, error or None): where a worker reads one media input.
# `field` is the storyboard field ("image", "references", ...), for rules by kind.
Locator = Callable[[str, str], tuple[str, "str | None"]]


@dataclass(frozen=True, slots=True)
class SceneInputs:
    """Resolved locations (absolute paths or URLs) of a scene's media inputs."""

    image: str | None = None
    last_image: str | None = None
    references: tuple[str, ...] = ()
    pose_video: str | None = None
    face_video: str | None = None
    control_video: str | None = None
    mask: str | None = None
    audio: str | None = None

    def items(self) -> list[tuple[str, str]]:
        """(field path within the scene, location) of every input given."""
        out: list[tuple[str, str]] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                out += [(f"{f.name}[{i}]", v) for i, v in enumerate(value)]
            elif value is not None:
                out.append((f.name, value))
        return out

    @property
    def conditions(self) -> bool:
        """Whether the model is given anything besides text (audio is not for the model)."""
        return any(name.split("[")[0] != "audio" for name, _ in self.items())


def is_url(location: str) -> bool:
    return "://" in location


def families_with(name: str) -> list[str]:
    return sorted(p.family for p in PROFILES.values() if name in p.conditioning)


def resolve_inputs(at: str, spec: SceneSpec, board: Storyboard, profile: ModelProfile,
                   locator: Locator) -> tuple[SceneInputs, list[FieldError]]:
    """The scene's inputs with locations resolved; every rule broken is an error."""
    errors: list[FieldError] = []
    given = {n for n in MEDIA_FIELDS if getattr(spec, n)}
    for name in sorted(given - profile.conditioning - ANY_FAMILY):
        note = f". {profile.input_note}" if profile.input_note else ""
        errors.append(FieldError(at + name, (
            f"{profile.family} cannot use `{name}`; families that can: "
            f"{', '.join(families_with(name)) or 'none'}{note}")))
    # start_from: the first frame is an earlier scene's last one (farm.spec.continuity)
    # (first-frame families; where `image` is the character, S2V, it is still needed)
    framed = {"image"} if getattr(spec, "start_from", None) and takes_first_frame(profile) \
        else set()
    for name in sorted(profile.requires - given - framed):
        also = " (or `start_from`)" if name == "image" and takes_first_frame(profile) else ""
        errors.append(FieldError(at + name,
                                 f"{profile.family} needs `{name}`{also} in every scene"))
    if spec.mask and not spec.control_video and "mask" in profile.conditioning:
        errors.append(FieldError(at + "mask", (
            "a mask marks what to keep of `control_video` (black) and what to generate (white): "
            "give control_video too")))
    refs, ref_errors = _references(at, spec, board, locator)
    errors += ref_errors
    if "references" in profile.conditioning and refs:
        fewest, most = profile.min_references, profile.max_references
        if not fewest <= len(refs) <= most:
            want = f"exactly {fewest}" if fewest == most else f"{fewest} to {most}"
            errors.append(FieldError(at + "references", (
                f"{profile.family} takes {want} reference image(s), got {len(refs)}")))
    values = {}
    for name in MEDIA_FIELDS[:2] + MEDIA_FIELDS[3:]:
        raw = getattr(spec, name)
        values[name], err = (None, None) if raw is None else locator(name, raw)
        if err:
            errors.append(FieldError(at + name, err))
    return SceneInputs(references=tuple(refs), **values), errors


def _references(at: str, spec: SceneSpec, board: Storyboard,
                locator: Locator) -> tuple[list[str], list[FieldError]]:
    """Entries by id (a reference, or every image of a character) or by location; each
    image once, in order. Ids were checked by parse_storyboard."""
    by_id = {r.id: [r.image] for r in board.references}
    by_id |= {c.id: list(c.references) for c in board.characters}
    out: list[str] = []
    errors: list[FieldError] = []
    for j, entry in enumerate(spec.references or ()):
        if is_reference_id(entry) and entry in by_id and not by_id[entry]:
            errors.append(FieldError(f"{at}references[{j}]",
                                     f"character {entry!r} has no reference images"))
        for raw in by_id.get(entry, [entry]) if is_reference_id(entry) else [entry]:
            location, err = locator("references", raw)
            if err:
                errors.append(FieldError(f"{at}references[{j}]", err))
            elif location not in out:
                out.append(location)
    return out, errors


def files_under(base_dir: str | Path) -> Locator:
    """The local renderer's locator: paths relative to `base_dir` (the storyboard's
    folder), or URLs."""
    return lambda _field, raw: locate(raw, Path(base_dir))


def locate(raw: str, base_dir: Path) -> tuple[str, str | None]:
    """(absolute path or URL, error or None). URLs are checked when decoded."""
    if is_url(raw):
        return raw, None
    path = (base_dir / raw).resolve()
    if not path.is_file():
        return str(path), f"no such file: {path}"
    return str(path), None
