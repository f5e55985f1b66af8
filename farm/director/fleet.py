"""What the farm's workers are doing, as a frozen snapshot for monitors (the web monitor's
pools page).

The scheduler belongs to the engine thread, so nothing else may read it: the director's
loop takes this snapshot there, twice a second, and other threads read the latest one
(`Director.fleet`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from farm.plan.film import FilmPlan
from farm.sched.output import PoolStats
from farm.sched.scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class WorkerView:
    worker_id: str
    # The pool (Serve deployment) it belongs to; its own id when it has none.
    pool: str
    # What it holds: "<model>/<part>" (parts: expert names, "text", "vae"), or bare parts.
    holds: tuple[str, ...]
    slots: int
    # Slots running work now.
    busy: int
    alive: bool
    # The expert whose weights it used last (resident on a worker holding several).
    warm: str = ""


@dataclass(frozen=True, slots=True)
class Fleet:
    # Director clock of the snapshot.
    time: float
    pools: tuple[PoolStats, ...] = ()
    workers: tuple[WorkerView, ...] = ()
    # Film id -> workers the film no longer uses (they failed it too often).
    excluded: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Expert -> solver steps (x segments) planned by the films not yet finished: the
    # work each expert's pool must do, to compare with the pool sizes.
    planned_steps: Mapping[str, int] = field(default_factory=dict)


def snapshot(scheduler: Scheduler, plans: Iterable[FilmPlan], now: float) -> Fleet:
    """Call from the engine thread only. `plans`: those of the unfinished films."""
    workers = tuple(
        WorkerView(w.spec.worker_id, w.spec.pool or w.spec.worker_id, tuple(sorted(w.spec.holds)),
                   w.spec.slots, min(w.busy, w.spec.slots), w.alive, w.warm[0] if w.warm else "")
        for w in scheduler.workers())
    excluded = {}
    for fid in scheduler.film_ids():
        ids = scheduler.progress(fid).excluded_worker_ids
        if ids:
            excluded[fid] = ids
    steps: dict[str, int] = {}
    for plan in plans:
        for expert, n in planned_steps(plan).items():
            steps[expert] = steps.get(expert, 0) + n
    return Fleet(now, scheduler.pool_stats(), workers, excluded, steps)


def planned_steps(plan: FilmPlan) -> dict[str, int]:
    """Expert name -> solver steps the film's plan runs on it (every segment counted)."""
    experts = plan.film.profile.experts
    segments = sum(len(u.segments) for u in plan.units)
    out = {e: 0 for e in experts}
    for phase in plan.phases:
        out[experts[phase.expert]] += phase.num_steps * segments
    return out
