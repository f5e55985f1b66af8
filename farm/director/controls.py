"""Render-farm controls on a film: pause, resume, priority, retry, re-render a range.

Every control checks the film's state here (FAILED_PRECONDITION with the reason when it
does not apply), then queues a command for the engine thread (farm.director.commands).
The film's state changes when the scheduler applies it, at the next phase boundary;
pause and resume wait until it has been applied, so the caller sees the new state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm.director.commands import Pause, Rerender, Resume, Retry, SetPriority, units_for_frames
from farm.director.entry import Entry
from farm.director.errors import FailedPrecondition
from farm.director.persist import resume_units
from farm.director.records import FilmInfo
from farm.plan.continuity import dependants, film_ranges
from farm.sched.fairness import check_priority
from farm.sched.output import FilmState

if TYPE_CHECKING:
    from farm.director.director import Director

# Seconds pause/resume wait for the engine thread to apply them. The engine thread
# applies commands between steps; a farm that runs phases in this process (inline) is in
# a step for as long as a phase runs, so the bound is a long phase, not a round trip; it
# stays under the client SDK's 30 s deadline (farm.client.common.UNARY_TIMEOUT). Past it
# the call returns the state as it is (the command still applies).
WAIT_S = 20.0


def pause(d: Director, entry: Entry) -> FilmInfo:
    if entry.state not in (FilmState.QUEUED, FilmState.RUNNING):
        raise FailedPrecondition(f"films/{entry.film_id} is {entry.state.value}; only QUEUED "
                                 "or RUNNING films can be paused")
    d.queue(Pause(entry)).wait(WAIT_S)
    return entry.info()


def resume(d: Director, entry: Entry) -> FilmInfo:
    if entry.state != FilmState.PAUSED:
        raise FailedPrecondition(f"films/{entry.film_id} is {entry.state.value}, not PAUSED")
    d.queue(Resume(entry)).wait(WAIT_S)
    return entry.info()


def set_priority(d: Director, entry: Entry, priority: int) -> FilmInfo:
    check_priority(priority)
    if entry.state.is_final:
        raise FailedPrecondition(f"films/{entry.film_id} is {entry.state.value}")
    entry.priority = priority
    d.queue(SetPriority(entry, priority))
    entry.publish(d.clock(), "priority", f"priority set to {priority}", priority=priority)
    if d.store is not None:
        d.store.update_film(entry.film_id, priority=priority)
    return entry.info()


def retry(d: Director, entry: Entry) -> FilmInfo:
    """A FAILED film continues from what it finished, with fresh attempts."""
    if entry.state != FilmState.FAILED:
        raise FailedPrecondition(f"films/{entry.film_id} is {entry.state.value}; only FAILED "
                                 "films can be retried")
    if (why := d.unservable(entry.film)) is not None:
        raise FailedPrecondition(f"films/{entry.film_id}: {why}")
    archive = entry.archive
    resume = _as_it_stands(d, entry)
    # The archive first: its previous run may still be ending, and must end on a final state.
    d.router.streams[entry.film_id] = _rewrite(d, entry, archive.written, archive.total)
    entry.reopen(d.clock(), "retry: failed work runs again")
    d.queue(Retry(entry, resume))
    return entry.info()


def rerender(d: Director, entry: Entry, scene_id: str, first: int, last: int) -> FilmInfo:
    if entry.state not in (FilmState.SUCCEEDED, FilmState.FAILED):
        raise FailedPrecondition(f"films/{entry.film_id} is {entry.state.value}; re-render a "
                                 "film once it has SUCCEEDED or FAILED")
    try:
        units, start, stop = units_for_frames(entry.plan, scene_id, first, last)
    except KeyError:
        raise ValueError(f"films/{entry.film_id} has no scene {scene_id!r}") from None
    # scenes started from these units' last frame render again too (farm.plan.continuity);
    # the scenes between them keep their frames
    extra = dependants(entry.plan, units)
    units += extra
    ranges = film_ranges(entry.plan, units)
    start, stop = ranges[0][0], ranges[-1][1]
    if d.store is not None:
        d.store.drop_checkpoints(entry.film_id,
                                 [s.id for u in units for s in entry.plan.unit(u).segments])
    resume = _as_it_stands(d, entry)
    skip = tuple((a[1], b[0]) for a, b in zip(ranges, ranges[1:], strict=False))
    d.router.streams[entry.film_id] = _rewrite(d, entry, start, stop, skip)  # first, as in retry
    also = f"; dependants re-rendered too: {', '.join(extra)}" if extra else ""
    entry.reopen(d.clock(), f"re-render of {scene_id} frames {first}..{last}: units "
                            f"{', '.join(units)} (film frames "
                            f"{', '.join(f'{a}..{b - 1}' for a, b in ranges)}){also}")
    d.queue(Rerender(entry, units, resume))
    return entry.info()


def _as_it_stands(d: Director, entry: Entry):
    """Units' progress from checkpoints and archived frames, in case the scheduler has
    forgotten the finished film and must admit it again."""
    ckpts = d.store.checkpoints(entry.film_id) if d.store is not None else {}
    return resume_units(entry.plan, ckpts, entry.archive.written)


def _rewrite(d: Director, entry: Entry, start: int, stop: int,
             skip: tuple[tuple[int, int], ...] = ()):
    archive = entry.archive
    archive.rewrite(start, stop, on_done=lambda error: d._archive_done(entry, error), skip=skip)
    return archive.stream
