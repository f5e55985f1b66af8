"""Choosing workers for a task: capability, exclusion, gang all-or-nothing, locality.

Preference for each member, in order:
  1. locality: the worker that already holds the member's latents (no transfer);
  2. balance: the most specialised worker (fewest things held), keeping workers that
     hold several experts free for whichever pool backs up;
  3. the most free slots, then the worker id (determinism).

A gang larger than every slot its pool has would never fit; it waits until the whole
pool is idle and then shares workers, several members per worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from farm.sched.state import WorkerState


def capable(workers: Iterable[WorkerState], need: str, excluded: set[str]) -> list[WorkerState]:
    """Alive workers that hold `need` and are not excluded."""
    return [w for w in workers
            if w.alive and need in w.spec.holds and w.spec.worker_id not in excluded]


def place(pool: list[WorkerState], free: Mapping[str, int], num_members: int,
          preferred: tuple[str | None, ...] = ()) -> tuple[str, ...] | None:
    """Worker id per member, or None when the members do not fit now (a value, not an error).

    `free` is the free slots per worker in this scheduling round; `preferred[i]` is where
    member i's data lives.
    """
    if not pool:
        return None
    total = sum(w.spec.slots for w in pool)
    if num_members > total:
        return _oversubscribe(pool, free, num_members)
    left = {w.spec.worker_id: free[w.spec.worker_id] for w in pool}
    if sum(left.values()) < num_members:
        return None
    order = sorted(pool, key=lambda w: (len(w.spec.holds), -left[w.spec.worker_id], w.spec.worker_id))
    chosen: list[str | None] = [None] * num_members
    for i in range(num_members):
        want = preferred[i] if i < len(preferred) else None
        if want is not None and left.get(want, 0) > 0:
            chosen[i] = want
            left[want] -= 1
    for i in range(num_members):
        if chosen[i] is None:
            w = next(w for w in order if left[w.spec.worker_id] > 0)
            chosen[i] = w.spec.worker_id
            left[w.spec.worker_id] -= 1
    return tuple(c for c in chosen if c is not None)


def _oversubscribe(pool: list[WorkerState], free: Mapping[str, int],
                   num_members: int) -> tuple[str, ...] | None:
    if any(free[w.spec.worker_id] < w.spec.slots for w in pool):
        return None
    ids = sorted(w.spec.worker_id for w in pool)
    return tuple(ids[i % len(ids)] for i in range(num_members))


def take(free: dict[str, int], worker_ids: tuple[str, ...]) -> None:
    """Consume one slot per member (an oversubscribed gang drains each worker to zero)."""
    for wid in worker_ids:
        free[wid] = max(0, free[wid] - 1)
