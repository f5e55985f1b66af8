"""Baselines on the same workload: clips queued for groups of GPUs (no reelfarm scheduler).

    official  every segment is an 81-frame clip run by the official script on a group
              of G GPUs with Ulysses sequence parallel (G in 2..40, a divisor of the 40
              heads); GPUs // G groups; clips queue for free groups.
    naive     G = 1: one GPU per clip, both experts offloaded and swapped in per clip
              (the published single-GPU time includes the swap).

A clip takes the published end-to-end time (text encoding, denoising, VAE decode) of
its model and resolution at G GPUs (costs.CostModel.clip_s). Clips are dispatched first
come first served (film arrival, then scene and segment order), skipping clips whose
chain predecessor has not finished. The official script writes a clip when it is done,
so a film's first frame is out when its first clip finishes (no streaming).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from farm.sim.costs import REF_FRAMES, CostModel
from farm.sim.result import FilmResult, SimResult
from farm.sim.workload import Workload


@dataclass(frozen=True, slots=True)
class Clip:
    film: int
    order: int  # playback order within the film
    seconds: float
    # Index (in the clip list) of the clip this one waits for (chain), or -1.
    after: int
    # Whether the clip holds the film's first frame.
    first: bool


def clips(workload: Workload, costs: CostModel, group: int) -> list[Clip]:
    out: list[Clip] = []
    for i, a in enumerate(workload.arrivals):
        plan, film = a.plan, a.plan.film
        height = 720 if film.height >= 600 else 480
        base = costs.clip_s(film.profile.family, height, group)
        expert = film.profile.experts[0]
        ref = costs.step_s(plan, (REF_FRAMES - 1) // 4 + 1, expert)
        for sp in plan.scenes:
            prev_unit: int = -1
            for unit in sp.units:
                first_of_unit = len(out)
                for seg in unit.segments:
                    scale = costs.step_s(plan, seg.window.size, expert) / ref
                    out.append(Clip(i, len(out), base * scale,
                                    prev_unit if unit.after else -1,
                                    sp.scene.index == 0 and unit.index == 0 and seg.index == 0))
                prev_unit = first_of_unit + len(unit.segments) - 1
    return out


def clip_queue(workload: Workload, gpus: int, group: int, costs: CostModel) -> SimResult:
    """Simulate FIFO clips on gpus // group groups of `group` GPUs."""
    items = clips(workload, costs, group)
    arrivals = [arrival.time for arrival in workload.arrivals]
    n_groups = gpus // group
    if n_groups < 1:
        raise ValueError(f"a group of {group} GPUs does not fit in {gpus}")
    done_at: dict[int, float] = {}
    waiting = list(range(len(items)))
    free, busy, running = n_groups, 0.0, []  # running: heap of (end, clip index)
    now = 0.0
    while waiting or running:
        ready = [c for c in waiting if arrivals[items[c].film] <= now
                 and (items[c].after < 0 or items[c].after in done_at)]
        for c in ready[:free]:
            heapq.heappush(running, (now + items[c].seconds, c))
            busy += items[c].seconds * group
            waiting.remove(c)
        free -= min(free, len(ready))
        upcoming = [arrivals[items[c].film] for c in waiting if arrivals[items[c].film] > now]
        times = [t for t in (running[0][0] if running else None, min(upcoming, default=None))
                 if t is not None]
        if not times:
            break  # nothing can ever start (cannot happen with finite chains)
        now = min(times)
        while running and running[0][0] <= now:
            _, c = heapq.heappop(running)
            done_at[c] = now
            free += 1
    return SimResult(_films(workload, items, done_at), {"all": gpus}, {"all": busy}, 0.0,
                     note=f"G={group}")


def _films(workload: Workload, items: list[Clip], done_at: dict[int, float]) -> tuple:
    out = []
    for i, a in enumerate(workload.arrivals):
        mine = [c for c in range(len(items)) if items[c].film == i]
        first = next(done_at.get(c) for c in mine if items[c].first)
        done = max(done_at[c] for c in mine) if all(c in done_at for c in mine) else None
        out.append(FilmResult(a.film_id, a.time, first, done,
                              "SUCCEEDED" if done is not None else "UNFINISHED"))
    return tuple(out)
