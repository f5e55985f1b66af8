"""Reading films back from the job store when a director starts (after a restart).

Finished films come back as records (get, list, frames and the mp4 keep working);
unfinished ones re-enter the scheduler where they stood (farm.director.persist), except
films of a model the farm no longer serves: those fail, saying so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm.director.commands import Add, Pause
from farm.director.entry import Entry
from farm.director.persist import event_from_json, resume_units
from farm.plan.film import plan_film
from farm.sched.output import FilmState
from farm.spec.serde import film_from_dict

if TYPE_CHECKING:
    from farm.director.director import Director


def restore(d: Director) -> None:
    assert d.store is not None
    for row in d.store.films():
        film = film_from_dict(row.film)
        state = FilmState(row.state)
        entry = Entry(row.id, film, plan_film(film), row.tenant, row.request_id or "", row.priority,
                      row.create_time, d._archive(row.id, film, row.tenant), state=state,
                      reason=row.reason,
                      events=[event_from_json(e) for e in d.store.events(row.id)])
        entry.update_time, entry.first_frame_time = row.update_time, row.first_frame_time
        d.adopt(entry)
        if state.is_final:
            entry.archive.finished = True  # nothing more will come; readers see what exists
            continue
        if (why := d.unservable(film)) is not None:
            entry.archive.finished = True
            entry.set_state(d.clock(), FilmState.FAILED, why)
            continue
        resume = resume_units(entry.plan, d.store.checkpoints(row.id), entry.archive.written)
        d.start_archive(entry)
        d.queue(Add(entry, resume))
        if state == FilmState.PAUSED:
            d.queue(Pause(entry))
        done = sum(r.phases_done for r in resume)
        entry.publish(d.clock(), "state", f"resumed after a director restart ({done} phases and "
                                          f"{entry.archive.written} frames kept)")
