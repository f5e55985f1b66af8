"""What the director writes to the job store, and how it reads a film back after a restart.

Writes are small and happen as things occur: a film's row when it is accepted and when
its state changes, each event, each finished task (executions: the render log), each
checkpoint. On start, every film is read back; an unfinished one re-enters the scheduler
with each unit where it stood:

    unit decoded  <=> all its frames are in the archive (PNGs on disk)
    phases_done    = 1 + the last phase with a checkpoint for every segment of the unit
    chain unit decoded but its successor not: decode again (its last frame conditions
    the successor), so it resumes with its final checkpoint instead
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from farm.director.records import FilmEvent
from farm.plan.continuity import successor
from farm.plan.film import FilmPlan
from farm.sched.output import (
    Event,
    FilmState,
    FramesDecoded,
    PhaseFinished,
    TaskRetried,
    UnitResume,
)
from farm.store.jobs import Execution, JobStore
from farm.store.models import FilmRow


def event_to_json(e: FilmEvent) -> dict[str, Any]:
    data = dataclasses.asdict(e)
    data["state"] = e.state.value
    return data


def event_from_json(data: dict[str, Any]) -> FilmEvent:
    return FilmEvent(**{**data, "state": FilmState(data["state"]),
                        "worker_ids": tuple(data.get("worker_ids", ()))})


def execution_of(e: Event, experts: tuple[str, ...], now: float) -> Execution | None:
    """The render-log line of a scheduler event about a finished task."""
    if isinstance(e, PhaseFinished):
        return Execution("phase", e.unit_id, e.phase_index, experts[e.expert], e.worker_ids, True,
                         e.note, e.duration, now)
    if isinstance(e, FramesDecoded):
        return Execution("decode", f"{e.scene_id}", -1, "", (), True,
                         f"frames {e.frame_start}..{e.frame_stop - 1}", e.duration, now)
    if isinstance(e, TaskRetried):
        return Execution("failed", e.task_id, -1, "", (e.worker_id,) if e.worker_id else (),
                         False, e.reason, 0.0, now)
    return None


def resume_units(plan: FilmPlan, checkpoints: dict[tuple[str, int], str],
                 frames_written: int) -> tuple[UnitResume, ...]:
    out = []
    num_phases = len(plan.phases)
    decoded = {u.id for sp in plan.scenes for u in sp.units
               if sp.film_frame_start + u.frame_stop <= frames_written}
    for sp in plan.scenes:
        for u in sp.units:
            # its conditioning of the unit after it (a chain's, a cut's) died with the run
            nxt = successor(plan, u.id)
            successor_waits = nxt is not None and nxt.id not in decoded
            if u.id in decoded and not successor_waits:
                out.append(UnitResume(u.id, num_phases, (), decoded=True))
                continue
            done = _phases_done(u, checkpoints, num_phases)
            latest = (tuple((s.id, checkpoints[(s.id, done - 1)]) for s in u.segments)
                      if done else ())
            out.append(UnitResume(u.id, done, latest))
    return tuple(out)


def _phases_done(unit, checkpoints: dict[tuple[str, int], str], num_phases: int) -> int:
    for p in reversed(range(num_phases)):
        if all((s.id, p) in checkpoints for s in unit.segments):
            return p + 1
    return 0


class Recorder:
    """The director's writes; every method is one short transaction."""

    def __init__(self, store: JobStore):
        self.store = store

    def film_created(self, entry: Any) -> None:
        from farm.spec.serde import film_to_dict

        self.store.add_film(FilmRow(
            id=entry.film_id, tenant=entry.tenant, request_id=entry.request_id or None,
            title=entry.film.title, model=entry.film.model, state=entry.state.value,
            reason=entry.reason, priority=entry.priority, create_time=entry.create_time,
            update_time=entry.update_time, first_frame_time=entry.first_frame_time,
            film=film_to_dict(entry.film), frames_written=entry.archive.written))

    def film_updated(self, entry: Any) -> None:
        self.store.update_film(entry.film_id, state=entry.state.value, reason=entry.reason,
                               priority=entry.priority, update_time=entry.update_time,
                               first_frame_time=entry.first_frame_time,
                               frames_written=entry.archive.written)

    def event(self, film_id: str, e: FilmEvent) -> None:
        self.store.add_event(film_id, e.seq, event_to_json(e))

    def step(self, events: list[Event], experts: dict[str, tuple[str, ...]], saved: list[Any],
             now: float) -> None:
        """The render-log rows of a step's events and the checkpoints its phases wrote,
        together (farm.store.jobs.JobStore.record_step)."""
        rows = [(e.film_id, row) for e in events if e.film_id in experts
                and (row := execution_of(e, experts[e.film_id], now)) is not None]
        ckpts = [(c.film_id, c.segment_id, c.phase_index, c.key, c.nbytes, now) for c in saved]
        self.store.record_step(rows, ckpts)


_log = logging.getLogger("reelfarm.films")


def log_event(entry: Any, e: FilmEvent) -> None:
    """One log line per film event, with the ids it is about (JSON logs keep them as fields)."""
    level = logging.WARNING if e.kind in ("retry", "error") or e.state == FilmState.FAILED \
        else logging.INFO
    _log.log(level, "%s: %s", e.kind, e.message, extra={
        "film_id": entry.film_id, "tenant": entry.tenant, "scene_id": e.scene_id,
        "unit_id": e.unit_id, "phase": e.phase_index if e.kind == "phase" else None,
        "expert": e.expert, "worker_ids": e.worker_ids, "state": e.state.value, "event": e.kind})
