"""Commands the director's engine thread applies between steps (the engine is owned by
that one thread; API calls queue these, so each takes effect at a phase boundary).

    ("add", entry, resume)         admit a film (resume: units' progress after a restart)
    ("cancel" | "pause" | "resume", entry)
    ("priority", entry, value)
    ("retry", entry, resume)       fresh attempts for a FAILED film
    ("rerender", entry, unit ids, resume)  compute these units again, re-deliver frames
(`resume` re-admits a finished film the scheduler already forgot, as it stands.)
"""

from __future__ import annotations

from typing import Any

from farm.engine.core import EngineCore
from farm.plan.film import FilmPlan
from farm.sched.output import Event


def apply(engine: EngineCore, cmd: tuple) -> list[Event]:
    kind, entry = cmd[0], cmd[1]
    sched = engine.scheduler
    fid = entry.film_id
    if kind == "add":
        return engine.add_film(fid, entry.plan, priority=entry.priority, tenant=entry.tenant,
                               resume=cmd[2])
    if kind == "retry" and fid in sched.film_ids():
        # A FAILED film's in-memory handoffs are gone: admit it afresh, as it stands.
        sched.forget_film(fid)
    if fid not in sched.film_ids():
        if kind not in ("rerender", "retry"):
            return []
        events = engine.add_film(fid, entry.plan, priority=entry.priority, tenant=entry.tenant,
                                 resume=cmd[-1])
        if kind == "retry":
            return events  # admitted afresh: every attempt counter starts at zero
        return sched.rerender(fid, cmd[2])
    handlers: dict[str, Any] = {
        "cancel": lambda: sched.cancel_film(fid),
        "pause": lambda: sched.pause_film(fid),
        "resume": lambda: sched.resume_film(fid),
        "retry": lambda: sched.retry_film(fid),
        "priority": lambda: (sched.set_priority(fid, cmd[2]), [])[1],
        "rerender": lambda: sched.rerender(fid, cmd[2]),
    }
    return handlers[kind]()


def units_for_frames(plan: FilmPlan, scene_id: str, first: int, last: int) -> tuple[tuple[str, ...], int, int]:
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
