"""JSON shapes of the web monitor: films (from the API's pb.Film), plans, events, the
render log, the fleet, and errors (the API's status, with the HTTP code Google's
HTTP/JSON mapping gives it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from google.rpc import code_pb2

from farm.api import convert
from farm.api.protos import pb
from farm.api.status import internal_status, to_status
from farm.director.fleet import Fleet
from farm.director.records import FilmEvent
from farm.plan.film import FilmPlan

# google.rpc.Code -> HTTP status (google.rpc.code.proto's mapping).
HTTP_STATUS = {
    code_pb2.INVALID_ARGUMENT: 400, code_pb2.FAILED_PRECONDITION: 400, code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNAUTHENTICATED: 401, code_pb2.PERMISSION_DENIED: 403, code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409, code_pb2.ABORTED: 409, code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.CANCELLED: 499, code_pb2.UNAVAILABLE: 503, code_pb2.DEADLINE_EXCEEDED: 504,
}


def error_json(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of an error: `{"error": {code, status, message, details}}`, the
    message and details exactly as the gRPC API sends them; anything that is not a
    domain error is INTERNAL without its text (that goes to the log)."""
    status = to_status(exc) or internal_status()
    http = HTTP_STATUS.get(status.code, 500)
    return http, {"error": {
        "code": http, "status": code_pb2.Code.Name(status.code), "message": status.message,
        "details": [json_format.MessageToDict(d) for d in status.details]}}


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def film_json(film: pb.Film, eta: float | None) -> dict[str, Any]:
    """A film as GetFilm/ListFilms return it, flattened for the page, plus its ETA."""
    ttff = film.time_to_first_frame
    return {
        "name": film.name, "id": film.name.split("/", 1)[-1], "title": film.title,
        "state": convert.state_word(film.state), "reason": film.state_reason,
        "model": film.model, "fps": film.fps, "width": film.width, "height": film.height,
        "priority": film.priority, "phases_done": film.phases_done,
        "phases_total": film.phases_total, "frames_done": film.frames_done,
        "frames_total": film.frames_total, "create_time": _seconds(film.create_time),
        "update_time": _seconds(film.update_time),
        "time_to_first_frame": _seconds(ttff) if film.HasField("time_to_first_frame") else None,
        "eta_seconds": None if eta is None else round(eta, 1),
        "scenes": [{"id": s.id, "frames": s.frames, "frames_done": s.frames_done}
                   for s in film.scenes],
    }


def plan_json(plan: FilmPlan) -> dict[str, Any]:
    """Scenes -> units -> segments, and the phases every unit runs (expert, steps)."""
    experts = plan.film.profile.experts
    return {
        "experts": list(experts),
        "phases": [{"index": i, "expert": experts[p.expert], "start": p.start, "stop": p.stop}
                   for i, p in enumerate(plan.phases)],
        "scenes": [{
            "id": sp.scene.id, "frames": sp.scene.num_frames,
            "film_frame_start": sp.film_frame_start,
            "units": [{"id": u.id, "frame_start": u.frame_start, "frame_stop": u.frame_stop,
                       "after": u.after, "segments": [s.id for s in u.segments]}
                      for u in sp.units],
        } for sp in plan.scenes],
    }


def event_json(e: FilmEvent) -> dict[str, Any]:
    """A film event: a finished phase or decode is a bar [time - duration, time]."""
    out: dict[str, Any] = {"seq": e.seq, "time": e.time, "kind": e.kind, "state": e.state.value,
                           "message": e.message, "phases_done": e.phases_done,
                           "frames_done": e.frames_done}
    if e.kind == "phase":
        out.update(unit_id=e.unit_id, scene_id=e.scene_id, phase_index=e.phase_index,
                   expert=e.expert, worker_ids=list(e.worker_ids), duration=e.duration,
                   num_steps=e.num_steps)
    elif e.kind == "frames":
        out.update(scene_id=e.scene_id, frame_start=e.frame_start, frame_stop=e.frame_stop,
                   duration=e.duration)
    elif e.kind == "retry":
        out.update(worker_ids=list(e.worker_ids))
    elif e.kind == "priority":
        out.update(priority=e.priority)
    return out


def execution_json(e: pb.Execution) -> dict[str, Any]:
    return {"name": e.name, "kind": convert.execution_kind_word(e.kind), "unit_id": e.unit_id,
            "phase_index": e.phase_index if e.HasField("phase_index") else None,
            "expert": e.expert, "worker_ids": list(e.worker_ids), "succeeded": e.succeeded,
            "message": e.message,
            "duration": _seconds(e.duration) if e.HasField("duration") else None,
            "end_time": _seconds(e.end_time)}


def fleet_json(fleet: Fleet, excluded: Iterable[dict], failures: Iterable[dict]) -> dict[str, Any]:
    """Pools and workers (farm-wide), the step split against the pool sizes, and the
    caller's own films' excluded workers and recent failures."""
    # Holds are "<model>/<part>" (bare parts in some fleets): the split is per expert name.
    experts = sorted(fleet.planned_steps) or sorted(
        {h.rsplit("/", 1)[-1] for w in fleet.workers for h in w.holds} - {"text", "vae"})
    slots = {expert: sum(w.slots for w in fleet.workers if w.alive and _holds(w.holds, expert))
             for expert in experts}
    holds: dict[str, set[str]] = {}
    for w in fleet.workers:
        if w.alive:
            holds.setdefault(w.pool, set()).update(w.holds)
    return {
        "time": fleet.time,
        "pools": [{"pool": pool.pool, "holds": sorted(holds.get(pool.pool, ())),
                   "queued_phases": pool.queued_phases, "running_phases": pool.running_phases,
                   "workers": pool.workers, "slots": pool.slots, "busy_slots": pool.busy_slots,
                   "busy_fraction": round(pool.busy_fraction, 3)} for pool in fleet.pools],
        "workers": [{"worker_id": w.worker_id, "pool": w.pool, "holds": list(w.holds),
                     "slots": w.slots, "busy": w.busy, "alive": w.alive, "warm": w.warm}
                    for w in fleet.workers],
        "split": {"experts": experts,
                  "planned_steps": {expert: fleet.planned_steps.get(expert, 0)
                                    for expert in experts},
                  "pool_slots": slots},
        "excluded": list(excluded), "failures": list(failures),
    }


def _holds(holds: tuple[str, ...], expert: str) -> bool:
    return any(h == expert or h.endswith(f"/{expert}") for h in holds)
