"""Commands the director's engine thread applies between steps (the engine is owned by
that one thread; API calls queue these, so each takes effect at a phase boundary).

    Add(entry, resume)                 admit a film (resume: units' progress after a restart)
    Cancel / Pause / Resume(entry)
    SetPriority(entry, priority)
    Retry(entry, resume)               fresh attempts for a FAILED film
    Rerender(entry, unit_ids, resume)  compute these units again, re-deliver their frames
(`resume` re-admits a finished film the scheduler already forgot, as it stands.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from farm.director.entry import Entry
from farm.engine.core import EngineCore
from farm.plan.film import FilmPlan
from farm.sched.output import Event, UnitResume


@dataclass(frozen=True, slots=True)
class Add:
    verb: ClassVar[str] = "add"
    entry: Entry
    resume: tuple[UnitResume, ...] = ()


@dataclass(frozen=True, slots=True)
class Cancel:
    verb: ClassVar[str] = "cancel"
    entry: Entry


@dataclass(frozen=True, slots=True)
class Pause:
    verb: ClassVar[str] = "pause"
    entry: Entry


@dataclass(frozen=True, slots=True)
class Resume:
    verb: ClassVar[str] = "resume"
    entry: Entry


@dataclass(frozen=True, slots=True)
class SetPriority:
    verb: ClassVar[str] = "priority"
    entry: Entry
    priority: int


@dataclass(frozen=True, slots=True)
class Retry:
    verb: ClassVar[str] = "retry"
    entry: Entry
    resume: tuple[UnitResume, ...]


@dataclass(frozen=True, slots=True)
class Rerender:
    verb: ClassVar[str] = "rerender"
    entry: Entry
    unit_ids: tuple[str, ...]
    resume: tuple[UnitResume, ...]


Command = Add | Cancel | Pause | Resume | SetPriority | Retry | Rerender


def apply(engine: EngineCore, cmd: Command) -> list[Event]:
    sched = engine.scheduler
    fid = cmd.entry.film_id
    known = fid in sched.film_ids()
    match cmd:
        case Add(entry=entry, resume=resume):
            return _admit(engine, entry, resume)
        case Retry(entry=entry, resume=resume):
            if known:  # its in-memory handoffs are gone with the failure: admit it afresh
                sched.forget_film(fid)
            return _admit(engine, entry, resume)  # every attempt counter starts at zero
        case Rerender(entry=entry, unit_ids=unit_ids, resume=resume):
            if not known:
                # Forgotten once finished: admit it as it stands; the re-render's events
                # supersede those of its admission.
                _admit(engine, entry, resume)
            return sched.rerender(fid, unit_ids)
        case _ if not known:
            return []  # finished and forgotten: nothing left to change
        case Cancel():
            return sched.cancel_film(fid)
        case Pause():
            return sched.pause_film(fid)
        case Resume():
            return sched.resume_film(fid)
        case SetPriority(priority=priority):
            sched.set_priority(fid, priority)
            return []


def _admit(engine: EngineCore, entry: Entry, resume: tuple[UnitResume, ...]) -> list[Event]:
    return engine.add_film(entry.film_id, entry.plan, priority=entry.priority,
                           tenant=entry.tenant, resume=resume)


def units_for_frames(plan: FilmPlan, scene_id: str, first: int,
                     last: int) -> tuple[tuple[str, ...], int, int]:
    """Units to recompute for frames [first, last] of a scene, and the film frame range
    they deliver. Windows of a scene step together, so the whole gang is recomputed; in a
    chain every later unit depends on the one before, so those follow too."""
    sp = plan.scene_plan(scene_id)
    n = sp.scene.num_frames
    if not 0 <= first <= last < n:
        raise ValueError(f"frames must satisfy 0 <= first <= last < {n} for scene {scene_id}, "
                         f"got {first}..{last}")
    hit = [u for u in sp.units if u.frame_start <= last and first < u.frame_stop]
    chosen = list(hit)
    if not sp.continuous_decode:  # chain: successors follow
        chosen = [u for u in sp.units if u.index >= hit[0].index]
    start = sp.film_frame_start + chosen[0].frame_start
    stop = sp.film_frame_start + chosen[-1].frame_stop
    return tuple(u.id for u in chosen), start, stop
