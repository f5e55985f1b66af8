"""Timelines in: an OpenTimelineIO timeline (.otio, .otioz, .otiod, or an EDL through the
cmx_3600 adapter plugin) becomes a storyboard plus the picture cut.

    timeline.tracks[t]   (the one video track)
      Clip  -> a scene: frames from the clip's trimmed range at the film fps (exactly 4k+1),
               prompt and other scene fields from clip.metadata["reelfarm"]
      Gap   -> black frames in the deliverables (not rendered); any whole number of frames
      disabled Clip -> a gap (OTIO treats a disabled item as transparent)
      Transition -> an error: dissolves would need handle frames beyond the cut on both
               sides, which the farm does not render yet (use a cut)
    timeline.metadata["reelfarm"] -> film settings (title, fps, width, height, model, steps, ...)
    timeline.global_start_time    -> the start timecode of the deliverables

Durations are converted exactly: a range that is not a whole number of frames at the film
fps, or a clip whose frame count is not 4k+1, is an error naming the clip and the nearest
valid durations. Nothing is rounded. Errors name the field in the timeline, e.g.
`tracks[0][2].metadata.reelfarm.prompt`.

opentimelineio is imported inside functions so `farm.spec` stays light to import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from farm.spec.errors import FieldError, SpecError
from farm.spec.frames import is_valid_frame_count, nearest_frame_counts, or_list
from farm.spec.storyboard import Storyboard, parse_storyboard

TIMELINE_SUFFIXES = (".otio", ".otioz", ".otiod", ".edl")
# Storyboard settings a timeline may carry; the rest of the film comes from the timeline.
FILM_KEYS = ("title", "fps", "width", "height", "model", "steps", "shift", "solver",
             "negative_prompt", "window", "overlap", "delivery")
# An EDL has no frame rate of its own; the cmx_3600 adapter assumes 24 unless told.
EDL_DEFAULT_RATE = 24


def is_timeline(path: str | Path) -> bool:
    return Path(path).suffix.lower() in TIMELINE_SUFFIXES


@dataclass(frozen=True, slots=True)
class Slot:
    """One piece of the picture, in order: a scene to render or a gap of black frames."""

    kind: str  # "scene" or "gap"
    frames: int
    scene_id: str | None = None
    # Index of the item in its timeline track (None for storyboards): the export's anchor.
    item: int | None = None


@dataclass(frozen=True, slots=True)
class Cut:
    """The picture edit of a film: scenes and gaps in order, and where its timecode starts."""

    slots: tuple[Slot, ...]
    # Timecode of the first frame, in frames at the film fps (timeline.global_start_time).
    start_frame: int = 0
    # The timeline it came from, its picture track's index, and the rate it was read at.
    source: str | None = None
    track: int | None = None
    read_rate: int | None = None

    @property
    def num_frames(self) -> int:
        return sum(s.frames for s in self.slots)


def cut_of_scenes(scenes: list[tuple[str, int]]) -> Cut:
    """The cut of a storyboard film: its scenes back to back, no gaps."""
    return Cut(tuple(Slot("scene", n, sid) for sid, n in scenes))


@dataclass(frozen=True, slots=True)
class TimelineImport:
    board: Storyboard
    cut: Cut
    # Storyboard field paths ("scenes[1]", "width") -> the timeline's own paths.
    paths: dict[str, str] = field(default_factory=dict)

    def rename(self, errors: tuple[FieldError, ...] | list[FieldError]) -> list[FieldError]:
        """Errors found on the storyboard, renamed to the timeline fields they came from."""
        return [_rename(e, self.paths) for e in errors]


def read_timeline(path: str | Path, rate: int | None = None) -> Any:
    """The OTIO timeline in `path` (EDLs are read at `rate`, default 24 fps)."""
    import opentimelineio as otio

    path = Path(path)
    kwargs = {"rate": rate or EDL_DEFAULT_RATE} if path.suffix.lower() == ".edl" else {}
    try:
        result = otio.adapters.read_from_file(str(path), **kwargs)
    except Exception as exc:  # noqa: BLE001 - adapters raise many types; all mean "cannot read"
        hint = _adapter_hint(path)
        raise SpecError([FieldError("", f"cannot read timeline {path}: {exc}{hint}")]) from None
    if not isinstance(result, otio.schema.Timeline):
        raise SpecError([FieldError("", f"{path} holds a {type(result).__name__}, not a Timeline")])
    return result


def _adapter_hint(path: Path) -> str:
    if path.suffix.lower() != ".edl":
        return ""
    return (" (EDLs need the cmx_3600 adapter plugin, pip install otio-cmx3600-adapter, and a "
            "SMPTE rate such as 24, 25 or 30: --fps)")


def load_timeline(path: str | Path, overrides: dict[str, Any] | None = None) -> TimelineImport:
    """Timeline file -> storyboard + cut; `overrides` (CLI flags) win over the timeline's
    metadata. Raises SpecError listing every problem, by timeline field path."""
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    timeline = read_timeline(path, overrides.get("fps"))
    film, paths, errors = _film_settings(timeline, overrides, Path(path).stem)
    fps = _fps(film, paths)
    track, t_errors = _picture_track(timeline)
    errors += t_errors
    if track is None or isinstance(fps, FieldError):
        raise SpecError(errors + ([fps] if isinstance(fps, FieldError) else []))
    index, items = track
    scenes, slots, s_errors = _walk(items, index, fps, paths)
    start, g_errors = _start_frame(timeline, fps)
    errors += s_errors + g_errors
    if not scenes and not s_errors:
        errors.append(FieldError(f"tracks[{index}]", "the video track has no clips to render"))
    board = None
    try:
        board = parse_storyboard({**film, "scenes": scenes})
    except SpecError as exc:
        # Every problem at once: the schema's findings too, unless they only repeat
        # that scenes are missing (reported above, by clip).
        errors += [_rename(error, paths) for error in exc.errors
                   if not (error.path == "scenes" and not scenes)]
    if errors or board is None:
        raise SpecError(errors)
    cut = Cut(tuple(slots), start, str(path), index, overrides.get("fps") or None)
    return TimelineImport(board, cut, paths)


def _film_settings(timeline: Any, overrides: dict[str, Any],
                   default_title: str) -> tuple[dict[str, Any], dict[str, str], list[FieldError]]:
    md = _plain(timeline.metadata).get("reelfarm", {})
    paths = {k: f"metadata.reelfarm.{k}" for k in FILM_KEYS}
    if not isinstance(md, dict):
        return {}, paths, [FieldError("metadata.reelfarm", (
            f"must be a mapping of film settings ({', '.join(FILM_KEYS)}), "
            f"got {type(md).__name__}"))]
    errors = [FieldError(f"metadata.reelfarm.{k}", (
        "unknown film setting; allowed: " + ", ".join(FILM_KEYS)))
              for k in md if k not in FILM_KEYS]
    # Unknown settings are reported here (by timeline path); the rest go to the schema.
    film = {k: v for k, v in md.items() if k in FILM_KEYS}
    film.setdefault("title", timeline.name or default_title)
    rate = _timeline_rate(timeline)
    if rate is not None and "fps" not in film:
        film["fps"] = int(rate) if rate.denominator == 1 else float(rate)
        paths["fps"] = "fps (the timeline's rate)"
    for key, value in overrides.items():
        film[key] = value
        paths[key] = f"--{key}"
    return film, paths, errors


def _timeline_rate(timeline: Any) -> Fraction | None:
    """The rate the timeline counts frames in: its start time's, else its first item's."""
    if timeline.global_start_time is not None:
        return Fraction(timeline.global_start_time.rate).limit_denominator(1001)
    for track in timeline.video_tracks():
        for item in track:
            if hasattr(item, "source_range") and item.source_range is not None:
                return Fraction(item.source_range.duration.rate).limit_denominator(1001)
    return None


def _fps(film: dict[str, Any], paths: dict[str, str]) -> int | FieldError:
    fps = film.get("fps")
    where = paths.get("fps", "metadata.reelfarm.fps")
    if fps is None:
        return FieldError(where, "the timeline has no rate; set metadata.reelfarm.fps or --fps")
    if (isinstance(fps, bool) or not isinstance(fps, int | float) or fps != int(fps)
            or not 1 <= fps <= 240):
        return FieldError(where, (
            f"{fps!r} is not a whole number of frames per second in 1..240 (the film's fps; "
            "set metadata.reelfarm.fps or --fps, durations then convert exactly or are errors)"))
    return int(fps)


def _picture_track(timeline: Any) -> tuple[tuple[int, Any] | None, list[FieldError]]:
    import opentimelineio as otio

    video = [(i, t) for i, t in enumerate(timeline.tracks)
             if isinstance(t, otio.schema.Track) and t.kind == otio.schema.TrackKind.Video]
    if not video:
        return None, [FieldError("tracks", "the timeline has no video track")]
    used = [(i, t) for i, t in video if len(t)]
    if len(used) > 1:
        names = ", ".join(f"tracks[{i}] ({t.name or 'unnamed'})" for i, t in used)
        return None, [FieldError("tracks", (
            f"{len(used)} video tracks have items ({names}); reelfarm renders one picture track: "
            "flatten the timeline (otiotool --flatten video) or remove the others"))]
    return (used or video)[0], []


def _walk(track: Any, index: int, fps: int,
          paths: dict[str, str]) -> tuple[list[dict], list[Slot], list[FieldError]]:
    import opentimelineio as otio

    scenes: list[dict] = []
    slots: list[Slot] = []
    errors: list[FieldError] = []
    seen: dict[str, str] = {}
    for j, item in enumerate(track):
        at = f"tracks[{index}][{j}]"
        if isinstance(item, otio.schema.Transition):
            errors.append(FieldError(at, (
                f"transition {item.name or ''!r} ({item.transition_type}): transitions are not "
                "supported (a dissolve needs rendered handle frames past the cut); use a cut")))
        elif (isinstance(item, otio.schema.Gap)
                or (isinstance(item, otio.schema.Clip) and not item.enabled)):
            frames, err = _item_frames(item, at, fps, whole_only=True)
            errors += err
            slots.append(Slot("gap", frames or 0, item=j))
        elif isinstance(item, otio.schema.Clip):
            spec, err = _clip_scene(item, at, fps, seen)
            errors += err
            if spec is not None:
                paths[f"scenes[{len(scenes)}]"] = f"{at}.metadata.reelfarm"
                slots.append(Slot("scene", spec["frames"], spec["id"], item=j))
                scenes.append(spec)
        else:
            errors.append(FieldError(at, (
                f"a nested {type(item).__name__} {item.name!r}: flatten the timeline first "
                "(otiotool --flatten video); allowed items: Clip, Gap")))
    return scenes, slots, errors


def _clip_scene(clip: Any, at: str, fps: int,
                seen: dict[str, str]) -> tuple[dict | None, list[FieldError]]:
    name = clip.name or "unnamed"
    metadata = _clip_metadata(clip)
    if not isinstance(metadata, dict) or not metadata.get("prompt"):
        return None, [FieldError(f"{at}.metadata.reelfarm.prompt", (
            f"clip {name!r} has no prompt: set metadata['reelfarm']['prompt'] on the clip "
            "(or a '* REELFARM PROMPT: ...' comment in an EDL)"))]
    errors = [FieldError(f"{at}.metadata.reelfarm.{field}", (
        f"clip {name!r}: the duration comes from the clip's source_range, not from {field!r}"))
        for field in ("frames", "seconds") if field in metadata]
    sid = metadata.get("id") or _scene_id(name)
    if not sid:
        errors.append(FieldError(f"{at}.metadata.reelfarm.id", (
            f"clip {name!r} has no usable name for a scene id; set metadata['reelfarm']['id']")))
    elif sid in seen:
        errors.append(FieldError(f"{at}.metadata.reelfarm.id", (
            f"clip {name!r}: scene id {sid!r} is also used by {seen[sid]}; "
            "set a unique metadata['reelfarm']['id']")))
    seen.setdefault(str(sid), f"{at} ({name!r})")
    frames, f_errors = _item_frames(clip, at, fps, whole_only=False)
    errors += f_errors
    if errors:
        return None, errors
    kept = {field: value for field, value in metadata.items()
            if field not in ("frames", "seconds")}
    return {**kept, "id": sid, "frames": frames}, []


def _clip_metadata(clip: Any) -> Any:
    """metadata["reelfarm"], completed by `* REELFARM KEY: value` EDL comments."""
    md = _plain(clip.metadata)
    own = md.get("reelfarm", {})
    comments = (md.get("cmx_3600", {}).get("comments", [])
                if isinstance(md.get("cmx_3600"), dict) else [])
    from_edl = {}
    for line in comments:
        m = re.match(r"^\s*REELFARM\s+([A-Za-z_]+)\s*:\s*(.*)$", str(line), re.IGNORECASE)
        if m:
            value = m.group(2).strip()
            # A scalar in YAML terms, so "SEED: 3" is a number; prompts stay text.
            parsed = yaml.safe_load(value) if m.group(1).lower() != "prompt" else value
            from_edl[m.group(1).lower()] = parsed
    if not isinstance(own, dict):
        return own
    return {**from_edl, **own}


def _scene_id(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_")[:64]


def _item_frames(item: Any, at: str, fps: int, *,
                 whole_only: bool) -> tuple[int | None, list[FieldError]]:
    """The item's duration in frames at `fps`, exactly; a clip's must also be 4k+1."""
    name = item.name or ("gap" if whole_only else "unnamed")
    try:
        duration = item.trimmed_range().duration
    except Exception:  # noqa: BLE001 - OTIO raises when neither range is known
        return None, [FieldError(f"{at}.source_range", (
            f"{name!r} has no source_range and its media has no available_range"))]
    exact = (Fraction(duration.value).limit_denominator(10**6) * fps
             / Fraction(duration.rate).limit_denominator(1001))
    where = f"{at}.source_range.duration"
    if exact.denominator != 1:
        near = (int(exact), int(exact) + 1)
        return None, [FieldError(where, (
            f"{name!r}: {duration.value:g} frames at {duration.rate:g} fps is {float(exact):g} "
            f"frames at the film's {fps} fps, not a whole number; nearest whole: {or_list(near)}"))]
    n = int(exact)
    if whole_only or is_valid_frame_count(n):
        return n, []
    near = or_list(tuple(f"{f} frames ({f / fps:g} s)" for f in nearest_frame_counts(n)))
    return None, [FieldError(where, (
        f"clip {name!r} is {n} frames at {fps} fps, not 4k+1 (1, 5, 9, ... 81, ...); "
        f"nearest valid durations: {near}"))]


def _start_frame(timeline: Any, fps: int) -> tuple[int, list[FieldError]]:
    start = timeline.global_start_time
    if start is None:
        return 0, []
    exact = (Fraction(start.value).limit_denominator(10**6) * fps
             / Fraction(start.rate).limit_denominator(1001))
    if exact.denominator != 1 or exact < 0:
        return 0, [FieldError("global_start_time", (
            f"{start.value:g} at {start.rate:g} fps is not a whole frame at the film's {fps} fps"))]
    return int(exact), []


def _plain(value: Any) -> Any:
    """OTIO's AnyDictionary / AnyVector -> dict / list, recursively."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "AnyVector":
        return [_plain(v) for v in value]
    return value


def _rename(err: FieldError, paths: dict[str, str]) -> FieldError:
    m = re.match(r"^(scenes\[\d+\])(.*)$", err.path)
    if m and m.group(1) in paths:
        rest = ".source_range.duration" if m.group(2) == ".frames" else m.group(2)
        return FieldError(paths[m.group(1)].removesuffix(".metadata.reelfarm") + rest
                          if rest.startswith(".source_range") else paths[m.group(1)] + rest,
                          err.message)
    head, _, rest = err.path.partition(".")
    if head in paths:
        sep = "." if rest else ""
        return FieldError(paths[head] + sep + rest, err.message)
    return err
