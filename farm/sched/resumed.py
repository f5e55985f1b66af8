"""Re-admitting a film with progress: after a director restart, for a re-render, for a
retry. These helpers set the scheduler's bookkeeping; they make no decisions of policy.
"""

from __future__ import annotations

from farm.sched.output import UnitResume
from farm.sched.state import FilmRecord, SceneState, UnitState


def apply(f: FilmRecord, resume: tuple[UnitResume, ...]) -> None:
    """Set units to where they stood. A decoded unit's frames count as delivered."""
    by_id = {r.unit_id: r for r in resume}
    known = {u.plan.id for sc in f.scenes for u in sc.units}
    unknown = sorted(set(by_id) - known)
    if unknown:
        raise ValueError(f"film {f.film_id!r} has no units {unknown}")
    num_phases = len(f.plan.phases)
    for sc in f.scenes:
        for u in sc.units:
            r = by_id.get(u.plan.id)
            if r is None:
                continue
            if not 0 <= r.phases_done <= num_phases:
                raise ValueError(f"{u.plan.id}: phases_done {r.phases_done} "
                                 f"not in [0, {num_phases}]")
            latest = dict(r.latest)
            if not r.decoded and r.phases_done and set(latest) != {s.id for s in u.plan.segments}:
                raise ValueError(f"{u.plan.id}: resume needs a key for every segment")
            u.phases_done = num_phases if r.decoded else r.phases_done
            u.latest = {} if r.decoded else latest
            u.decoded = r.decoded
            f.phases_done += u.phases_done
        _frames_done(sc)


def _frames_done(sc: SceneState) -> None:
    """Frames delivered: those of the leading decoded units (frames leave in order)."""
    done = 0
    for u in sc.units:
        if not u.decoded:
            break
        done = u.plan.frame_stop
    sc.frames_done = done


def all_decoded(f: FilmRecord) -> bool:
    return all(u.decoded for sc in f.scenes for u in sc.units)


def units_by_id(f: FilmRecord, unit_ids: tuple[str, ...]) -> list[tuple[SceneState, UnitState]]:
    found = {u.plan.id: (sc, u) for sc in f.scenes for u in sc.units}
    missing = sorted(set(unit_ids) - set(found))
    if missing:
        raise ValueError(f"film {f.film_id!r} has no units {missing}")
    return [found[uid] for uid in unit_ids]


def clear_failures(f: FilmRecord) -> None:
    f.failures.clear()
    f.excluded.clear()
    for sc in f.scenes:
        for tries in sc.tries.values():
            tries.failed = tries.lost = 0
        for u in sc.units:
            for tries in u.tries.values():
                tries.failed = tries.lost = 0
