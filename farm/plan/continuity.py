"""Plan edges across cuts: a scene that starts from an earlier scene's last frame (pure).

    s010/u0 ── s010/u1 ──┐ decode of s010's last unit: its last frame (first-frame
                         │ families) or the frames its chain carries (Animate: 1 or 5,
                         │ S2V: 73 of history; farm.spec.continuity) become the
                         │ conditioning of ...
    s020/u0              │ (independent: runs meanwhile)
                         ▼
    s030/u0 (after = s010/u1) ── s030/u1 (after = s030/u0, its own chain)

The planner draws the edge (farm.plan.film `_link_start_from`); it is the same
`Unit.after` a chain uses inside a scene: the scheduler runs a unit once the unit it comes
after is decoded and has made its conditioning (farm.sched.tasks), so scenes that depend
on nothing keep running in parallel. Here: reading the edges.
"""

from __future__ import annotations

from farm.plan.film import FilmPlan, Unit


def successor(plan: FilmPlan, unit_id: str) -> Unit | None:
    """The unit that comes after `unit_id` (its chain's next clip, or the first unit of
    the scene that starts from it), or None."""
    scene_id, k = unit_id.split("/", 1)
    units = plan.scene_plan(scene_id).units
    index = int(k.removeprefix("u"))
    if index + 1 < len(units):  # inside the scene: a chain's next clip, if chained
        nxt = units[index + 1]
        return nxt if nxt.after == unit_id else None
    return next((sp.units[0] for sp in plan.scenes if sp.units[0].after == unit_id), None)


def dependants(plan: FilmPlan, unit_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Units that must render again when `unit_ids` do: everything after them, across
    scenes too (a scene started from a re-rendered one, and its own later clips)."""
    chosen, todo = list(unit_ids), list(unit_ids)
    while todo:
        nxt = successor(plan, todo.pop())
        if nxt is not None and nxt.id not in chosen:
            chosen.append(nxt.id)
            todo.append(nxt.id)
    return tuple(u for u in chosen if u not in unit_ids)


def film_ranges(plan: FilmPlan, unit_ids: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Film frames [start, stop) the units deliver, merged, in film order: a re-render
    of a and its dependant b is two ranges when an independent scene lies between."""
    spans = sorted((sp.film_frame_start + u.frame_start, sp.film_frame_start + u.frame_stop)
                   for sp in plan.scenes for u in sp.units if u.id in unit_ids)
    merged: list[tuple[int, int]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return tuple(merged)
