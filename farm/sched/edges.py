"""Plan edges in the scheduler's books: the unit a unit comes after, and the one after it.

    scene s010:  u0 ── u1 ─┐            a chain inside a scene (after = previous unit)
    scene s030:  u0 ◄──────┘ ── u1      start_from s010 (after = s010's last unit)

One lookup by unit id across scenes (farm.plan.continuity draws the edges), so readiness,
freeing and rollback treat a chain and a cut alike.
"""

from __future__ import annotations

from farm.plan.continuity import successor
from farm.sched.state import FilmRecord, SceneState, UnitState


def unit_state(film: FilmRecord, unit_id: str) -> tuple[SceneState, UnitState]:
    """The scene and unit of `unit_id` ("<scene id>/u<index>")."""
    scene_id, k = unit_id.split("/", 1)
    index = int(k.removeprefix("u"))
    for scene in film.scenes:
        if scene.scene_id == scene_id and index < len(scene.units):
            return scene, scene.units[index]
    raise KeyError(unit_id)


def before(film: FilmRecord, unit: UnitState) -> tuple[SceneState, UnitState] | None:
    """The unit whose decode conditions `unit` (and its scene), or None."""
    return unit_state(film, unit.plan.after) if unit.plan.after else None


def after(film: FilmRecord, unit: UnitState) -> tuple[SceneState, UnitState] | None:
    """The unit that `unit`'s decode conditions (and its scene), or None."""
    nxt = successor(film.plan, unit.plan.id)
    return unit_state(film, nxt.id) if nxt is not None else None
