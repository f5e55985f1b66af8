"""Which ready task a free worker gets: the scheduler's round, in two passes (pure).

A worker that holds several experts keeps one in GPU memory: on A14B both never fit an
80 GB GPU beside the text encoder and the activations, so a phase of the other expert
waits for a switch (~28 GB of weights, seconds; a phase takes tens of seconds to
minutes). Placement already prefers a warm worker for a given task (farm.sched.placement),
but a round that offers each film its first ready task in playback order hands a freed
worker whatever the best-ranked film needs next: the low-noise phase of the segment it
just ran, say, while the next segment's high-noise phase, for which it is warm, waits.
So the round runs twice over the films, best-ranked first both times:

  1. warm pass: one-GPU phases go only to workers that need no switch (warm for the
     phase's expert, or fresh); a film whose first ready phase would switch offers its
     next one (e.g. a later segment's phase of the expert the free workers hold). Such a
     failure reserves nothing and counts no demand as placed. Gangs are placed as in the
     switching pass, in rank order: a gang's width buys more than the switch of its cold
     ranks (a gang on warm workers only is narrower; tried, it made the 256-GPU rows of
     bench/scale.py 10-60 % slower), and placement gives it warm ranks first.
  2. switching pass: what is left is placed as before, switches allowed, gangs reserve.

The second pass is the round the scheduler had without the first, on the workers the
first left free: every task that would have started still starts when some worker is
free for it (work-conserving; no task waits for a worker that might never come), so a
queue drains as before (tests/unit/test_sched_choice.py, a property test over random
fleets and films). Fair share still orders both passes; a lower-ranked film's warm task
may start before a higher-ranked film's switching one in the same round, and fair share
charges it for it. Priority stays strict: once a film's ready work fails the warm pass,
no film of a lower priority is offered a warm task before the switching pass has placed
that film's work.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from farm.sched.output import TaskKind
from farm.sched.placement import Need, Round

# warm pass, then switching pass (Round.warm_only)
PASSES = (True, False)


def ready_decodes(reqs: Iterable[tuple[TaskKind, Need]]) -> dict[Need, int]:
    """Decodes ready this round, per need: they share the idle workers as band ranks."""
    out: dict[Need, int] = {}
    for kind, need in reqs:
        if kind is TaskKind.DECODE:
            out[need] = out.get(need, 0) + 1
    return out


def run_round(round_: Round, film_ids: Iterable[str], rank: Callable[[str], tuple],
              place: Callable[[str], bool], has_work: Callable[[str], bool]) -> None:
    """Both passes: offer each film (best `rank` first) one task at a time via `place`
    (True if one started), re-ranking it after each, until no worker is free."""
    ids = list(film_ids)
    for warm_only in PASSES:
        round_.warm_only = warm_only
        heap = [(rank(fid), fid) for fid in ids if has_work(fid)]
        heapq.heapify(heap)
        blocked = None  # priority level (rank[0]) of a film left waiting by the warm pass
        while heap and round_.has_free:
            r, fid = heapq.heappop(heap)
            if (now_rank := rank(fid)) != r:  # stale after another placement
                heapq.heappush(heap, (now_rank, fid))
                continue
            if blocked is not None and r[0] > blocked:
                break  # priority is strict: no lower film goes warm before it switches
            if place(fid):
                if has_work(fid):
                    heapq.heappush(heap, (rank(fid), fid))
            elif warm_only and blocked is None:
                blocked = r[0]
    round_.warm_only = False
