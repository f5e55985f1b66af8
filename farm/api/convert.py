"""The one place where protobuf and domain types meet (both directions, client and server).

    storyboard dict ──storyboard_to_film──> pb.Film ──film_to_storyboard──> storyboard dict
    FilmInfo (+ resolved Film) ──info_to_film──> pb.Film
    MediaInfo ──media_to_pb──> pb.Media
    FilmEvent ──event_to_pb──> pb.WatchFilmResponse
    Execution (render log row) ──execution_to_pb──> pb.Execution

Field names of pb.Film / pb.Scene are the storyboard's, so a validation error's storyboard
path (`scenes[1].frames`) becomes a request path by prefixing `film.` (`request_path`).
Frames and files in chunks are farm.api.chunks; LoRA and speed fields, farm.api.loras and
farm.api.speed; characters and dialogue scenes, farm.api.cast.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from farm.api import cast, loras, speed
from farm.api.protos import pb
from farm.director.records import FilmEvent, FilmInfo
from farm.media.library import blob_sha
from farm.sched.output import FilmState
from farm.spec.errors import FieldError, SpecError
from farm.spec.inputs import MEDIA_FIELDS

if TYPE_CHECKING:
    from farm.media.library import MediaInfo
    from farm.store.jobs import Execution

_SOLVERS = {"unipc": pb.Film.SOLVER_UNIPC, "euler": pb.Film.SOLVER_EULER}
_CONTINUITY = {"single": pb.Scene.CONTINUITY_SINGLE, "windows": pb.Scene.CONTINUITY_WINDOWS,
               "chain": pb.Scene.CONTINUITY_CHAIN}
_OPTIONAL_FILM = ("steps", "shift", "window", "overlap")
_D = pb.Delivery
_SCALES = {"lanczos": _D.SCALE_LANCZOS, "bicubic": _D.SCALE_BICUBIC,
           "bilinear": _D.SCALE_BILINEAR, "spline": _D.SCALE_SPLINE, "area": _D.SCALE_AREA,
           "neighbor": _D.SCALE_NEIGHBOR}
_FPS_METHODS = {"drop": _D.FPS_METHOD_DROP, "blend": _D.FPS_METHOD_BLEND,
                "interpolate": _D.FPS_METHOD_INTERPOLATE}
_FITS = {"pad": _D.FIT_PAD, "crop": _D.FIT_CROP}
_OPTIONAL_SCENE = ("negative_prompt", "guidance", "window", "overlap", "carry_frames")
_MEDIA_KINDS = {"image": pb.Media.KIND_IMAGE, "audio": pb.Media.KIND_AUDIO,
                "video": pb.Media.KIND_VIDEO, "adapter": pb.Media.KIND_ADAPTER}
_EXECUTION_KINDS = {"phase": pb.Execution.KIND_PHASE, "decode": pb.Execution.KIND_DECODE,
                    "failed": pb.Execution.KIND_FAILURE}


# ---- states ------------------------------------------------------------------------------

def state_to_pb(state: FilmState) -> int:
    return pb.Film.State.Value(f"STATE_{state.value}")


def state_from_word(word: str) -> FilmState:
    """`SUCCEEDED` or `STATE_SUCCEEDED` -> FilmState; ValueError names the valid words."""
    word = word.strip().upper().removeprefix("STATE_")
    try:
        return FilmState(word)
    except ValueError:
        raise ValueError(f"unknown state {word!r}; "
                         f"one of {', '.join(s.value for s in FilmState)}") from None


def state_word(value: int) -> str:
    """pb.Film.State value -> the state word, e.g. `SUCCEEDED`."""
    return pb.Film.State.Name(value).removeprefix("STATE_")


# ---- storyboard <-> pb.Film --------------------------------------------------------------

def storyboard_to_film(board: dict[str, Any], priority: int | None = None) -> pb.Film:
    """A schema-checked storyboard dict (`Storyboard.model_dump(exclude_unset=True)`)."""
    film = pb.Film(title=board["title"], fps=board["fps"], width=board["width"],
                   height=board["height"], model=board.get("model") or "",
                   negative_prompt=board.get("negative_prompt") or "")
    for key in _OPTIONAL_FILM:
        if board.get(key) is not None:
            setattr(film, key, board[key])
    if board.get("solver"):
        film.solver = _SOLVERS[board["solver"]]
    if priority is not None:
        film.priority = priority
    if board.get("delivery") is not None:
        film.delivery.CopyFrom(_delivery_to_pb(board["delivery"]))
    film.loras.extend(loras.loras_to_pb(board.get("loras") or []))
    if board.get("draft") is not None:
        film.draft.CopyFrom(loras.draft_to_pb(board["draft"]))
    if board.get("speed") is not None:
        film.speed.CopyFrom(speed.speed_to_pb(board["speed"]))
    film.characters.extend(cast.characters_to_pb(board.get("characters") or []))
    for s in board["scenes"]:
        scene = film.scenes.add(id=s["id"], prompt=s["prompt"], seed=s.get("seed", 0))
        for key in ("frames", "seconds", "window", "overlap", "negative_prompt",
                    "carry_frames", "start_from", *MEDIA_FIELDS):
            if s.get(key) is not None:
                value = s[key]
                if key == "references":
                    scene.references.extend(value)
                else:
                    setattr(scene, key, value)
        guidance = s.get("guidance")
        if isinstance(guidance, dict):
            scene.guidance_per_expert.update(guidance)
        elif guidance is not None:
            scene.guidance = guidance
        if s.get("continuity"):
            scene.continuity = _CONTINUITY[s["continuity"]]
        scene.loras.extend(loras.loras_to_pb(s.get("loras") or []))
        if s.get("speed") is not None:
            scene.speed.CopyFrom(speed.speed_to_pb(s["speed"]))
        scene.characters.extend(s.get("characters") or [])
        if s.get("dialogue") is not None:
            scene.dialogue.CopyFrom(cast.dialogue_to_pb(s["dialogue"]))
    return film


def film_to_storyboard(film: pb.Film) -> dict[str, Any]:
    """pb.Film -> storyboard dict for farm.spec (which checks every value); SpecError for
    what only the proto form can get wrong (unknown enum values, both guidance forms)."""
    errors: list[FieldError] = []
    data: dict[str, Any] = {"title": film.title, "fps": film.fps, "width": film.width,
                            "height": film.height, "negative_prompt": film.negative_prompt}
    if film.model:
        data["model"] = film.model
    for key in _OPTIONAL_FILM:
        if film.HasField(key):
            data[key] = getattr(film, key)
    if film.solver:
        data["solver"] = _enum_word(film.solver, _SOLVERS, "solver", errors)
    if film.HasField("delivery"):
        data["delivery"] = _delivery_to_storyboard(film.delivery, errors)
    if film.loras:
        data["loras"] = loras.loras_to_storyboard(film.loras)
    if film.HasField("draft"):
        data["draft"] = loras.draft_to_storyboard(film.draft)
    if film.HasField("speed"):
        data["speed"] = speed.speed_to_storyboard(film.speed)
    if film.characters:
        data["characters"] = cast.characters_to_storyboard(film.characters)
    data["scenes"] = [_scene_to_storyboard(i, s, errors) for i, s in enumerate(film.scenes)]
    if errors:
        raise SpecError(errors)
    return data


def _scene_to_storyboard(i: int, s: pb.Scene, errors: list[FieldError]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": s.id, "prompt": s.prompt, "seed": s.seed}
    for key in _OPTIONAL_SCENE:
        if s.HasField(key):
            out[key] = getattr(s, key)
    length = s.WhichOneof("length")
    if length is not None:
        out[length] = getattr(s, length)
    if s.guidance_per_expert:
        if s.HasField("guidance"):
            errors.append(FieldError(f"scenes[{i}].guidance_per_expert",
                                     "give either guidance or guidance_per_expert, not both"))
        out["guidance"] = dict(s.guidance_per_expert)
    if s.continuity:
        out["continuity"] = _enum_word(s.continuity, _CONTINUITY, f"scenes[{i}].continuity", errors)
    for key in MEDIA_FIELDS:
        value = list(getattr(s, key)) if key == "references" else getattr(s, key)
        if value:
            out[key] = value
    if s.start_from:
        out["start_from"] = s.start_from
    if s.loras:
        out["loras"] = loras.loras_to_storyboard(s.loras)
    if s.HasField("speed"):
        out["speed"] = speed.speed_to_storyboard(s.speed)
    if s.characters:
        out["characters"] = list(s.characters)
    if s.HasField("dialogue"):
        out["dialogue"] = cast.dialogue_to_storyboard(s.dialogue)
    return out


def _delivery_to_pb(d: dict[str, Any]) -> pb.Delivery:
    """A storyboard's `delivery:` (a dict; unset sizes and rate stay 0: the film's)."""
    out = pb.Delivery(fps=d.get("fps") or 0, width=d.get("width") or 0,
                      height=d.get("height") or 0)
    for key, table in (("scale", _SCALES), ("fps_method", _FPS_METHODS), ("fit", _FITS)):
        if d.get(key):
            setattr(out, key, table[d[key]])
    return out


def _delivery_to_storyboard(d: pb.Delivery, errors: list[FieldError]) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(d, k) for k in ("fps", "width", "height") if getattr(d, k)}
    for key, table in (("scale", _SCALES), ("fps_method", _FPS_METHODS), ("fit", _FITS)):
        if value := getattr(d, key):
            out[key] = _enum_word(value, table, f"delivery.{key}", errors)
    return out


def _enum_word(value: int, table: dict[str, int], path: str, errors: list[FieldError]) -> str:
    for word, number in table.items():
        if number == value:
            return word
    errors.append(FieldError(path, f"unknown value {value}"))
    return ""


_GUIDANCE = re.compile(r"^scenes\[(\d+)\]\.guidance(?=\.|$)")


def request_path(path: str, film: pb.Film) -> str:
    """Storyboard field path -> CreateFilmRequest field path (`film.scenes[1].frames`)."""
    m = _GUIDANCE.match(path)
    if (m and int(m.group(1)) < len(film.scenes)
            and film.scenes[int(m.group(1))].guidance_per_expert):
        path = path[:m.end()] + "_per_expert" + path[m.end():]
    return f"film.{path}" if path else "film"


# ---- domain records -> pb ----------------------------------------------------------------

def info_to_film(info: FilmInfo) -> pb.Film:
    """A film as the API shows it: the resolved spec, state and progress."""
    spec = info.film
    assert spec is not None, "the director attaches the resolved film to every FilmInfo"
    film = pb.Film(name=info.name, title=spec.title, fps=spec.fps, width=spec.width,
                   height=spec.height, model=spec.model, steps=spec.num_steps, shift=spec.shift,
                   solver=_SOLVERS.get(spec.solver, pb.Film.SOLVER_UNSPECIFIED),
                   priority=info.priority, state=state_to_pb(info.state),
                   state_reason=info.reason, phases_done=info.phases_done,
                   phases_total=info.phases_total, frames_done=info.frames_done,
                   frames_total=info.frames_total, create_time=_timestamp(info.create_time),
                   update_time=_timestamp(info.update_time))
    if (d := spec.delivery) is not None:  # resolved: every field set
        film.delivery.CopyFrom(pb.Delivery(
            fps=d.fps, width=d.width, height=d.height, scale=_SCALES[d.scale],
            fps_method=_FPS_METHODS[d.fps_method], fit=_FITS.get(d.fit, 0)))
    done = {s.id: s.frames_done for s in info.scenes}
    experts = spec.profile.experts
    for s in spec.scenes:
        scene = film.scenes.add(
            id=s.id, prompt=s.prompt, negative_prompt=s.negative_prompt, frames=s.num_frames,
            seed=s.seed, guidance_per_expert=dict(zip(experts, s.guidance, strict=True)),
            continuity=_CONTINUITY[s.continuity], window=s.window, overlap=s.overlap,
            frames_done=done.get(s.id, 0))
        _media_names(scene, s.inputs)
        scene.loras.extend(loras.adapters_to_pb(s.adapters, experts))
        if (resolved := speed.resolved_to_pb(s.speed, experts)) is not None:
            scene.speed.CopyFrom(resolved)
    if spec.draft is not None:
        film.draft.CopyFrom(loras.resolved_draft_to_pb(spec.draft, experts))
    if info.time_to_first_frame is not None:
        film.time_to_first_frame.CopyFrom(_duration(info.time_to_first_frame))
    return film


def _media_names(scene: pb.Scene, inputs) -> None:
    """The scene's inputs as the media names the film was created with."""
    for field, location in inputs.items():
        sha = blob_sha(location)
        if sha is None:  # a film created in-process with files: not API media
            continue
        name = f"media/{sha}"
        if field.startswith("references"):
            scene.references.append(name)
        else:
            setattr(scene, field, name)


def media_to_pb(info: MediaInfo) -> pb.Media:
    media = pb.Media(name=info.name, kind=_MEDIA_KINDS[info.kind], mime_type=info.mime_type,
                     size_bytes=info.size_bytes, width=info.width, height=info.height,
                     display_name=info.display_name, create_time=_timestamp(info.create_time))
    if info.duration_s is not None:
        media.duration.CopyFrom(_duration(info.duration_s))
    if info.rights is not None:
        media.rights.CopyFrom(pb.Rights(holder=info.rights.holder,
                                        reference=info.rights.reference))
    return media


def event_to_pb(e: FilmEvent) -> pb.WatchFilmResponse:
    msg = pb.WatchFilmResponse(sequence=e.seq, event_time=_timestamp(e.time),
                               state=state_to_pb(e.state), phases_done=e.phases_done,
                               frames_done=e.frames_done, message=e.message)
    R = pb.WatchFilmResponse
    if e.kind == "state":
        msg.state_change.CopyFrom(R.StateChange(state=state_to_pb(e.state), reason=e.message))
    elif e.kind == "phase":
        msg.phase_finished.CopyFrom(R.PhaseFinished(
            scene_id=e.scene_id, segment_id=e.unit_id, phase_index=e.phase_index,
            expert=e.expert, worker_ids=list(e.worker_ids), output_bytes=e.output_bytes))
    elif e.kind == "frames":
        msg.frames_decoded.CopyFrom(R.FramesDecoded(scene_id=e.scene_id, frame_start=e.frame_start,
                                                    frame_stop=e.frame_stop))
    elif e.kind == "retry":
        msg.task_retried.CopyFrom(R.TaskRetried(worker_id=e.worker_ids[0] if e.worker_ids else ""))
    elif e.kind == "priority":
        msg.priority_changed.CopyFrom(R.PriorityChanged(priority=e.priority))
    return msg


def execution_to_pb(parent: str, number: int, e: Execution) -> pb.Execution:
    """Line `number` (from 1) of the render log of film `parent` (`films/{film}`)."""
    msg = pb.Execution(name=f"{parent}/executions/{number}",
                       kind=_EXECUTION_KINDS.get(e.kind, pb.Execution.KIND_UNSPECIFIED),
                       unit_id=e.unit_id, expert=e.expert, worker_ids=list(e.worker_ids),
                       succeeded=e.ok, message=e.message, end_time=_timestamp(e.time))
    if e.phase_index >= 0:
        msg.phase_index = e.phase_index
    if e.ok:
        msg.duration.CopyFrom(_duration(e.duration))
    return msg


def execution_kind_word(value: int) -> str:
    """pb.Execution.Kind value -> `PHASE`, `DECODE` or `FAILURE`."""
    return pb.Execution.Kind.Name(value).removeprefix("KIND_")


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(seconds * 1e9))
    return ts


def _duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d
