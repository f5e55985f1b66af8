"""Baselines on the same workload and cost model: clips queued for groups of GPUs (no
reelfarm scheduler).

    official  every segment is an 81-frame clip of the official script on G GPUs with
              Ulysses sequence parallel (G = 1, or a divisor of the 40 heads; one GPU is
              the single-GPU script, offloading the expert it is not running);
    xdit      the same clips with CFG parallel as xDiT and LightX2V ship it: CFG 2 x
              Ulysses sp (2 sp GPUs per clip);
    naive     one GPU per clip (the official single-GPU script).

Each runs either on fixed groups (`group` GPUs, formed once, never re-formed) or under a
wave planner (`group` None) that sizes every clip when it starts, with the rule of
farm.sched.gangs: the layout that finishes the ready clips soonest in waves of the free
GPUs, among those wasting at most 1 - min_efficiency of their GPU-seconds; one GPU each
when clips >= free GPUs. The planner's official candidates are 1 x G, xdit's every
CFG x Ulysses layout. A planner that forms a group out of GPUs that did not run together
last pays the gang set-up (costs.gang_setup_s), as reelfarm's gangs do.

A clip on layout L takes text + image + decode (rank 0) + its denoising on one GPU x
costs.gang_ratio(L) (the official table: exactly the published time at 1, 4, 8 GPUs),
plus the offload at one GPU where both experts do not fit (costs.one_gpu_swap_s), plus
the inter-node all-to-all where a Ulysses group spans nodes (costs.straddle_ratio, for
8-GPU nodes). Groups are placed node by node, best fit (farm.sim.clipgpus). Clips are
dispatched first come first served (film arrival, then scene and segment order),
skipping clips whose chain predecessor has not finished. The script writes a clip when it
is done, so a film's first frame is out when its first clip finishes (no streaming).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from farm.plan.film import FilmPlan
from farm.sched.output import Layout
from farm.sim.clipgpus import Gpus, static_groups
from farm.sim.costs import SP_SIZES, CostModel
from farm.sim.result import FilmResult, SimResult
from farm.sim.workload import Workload

SINGLE = Layout()


@dataclass(frozen=True, slots=True)
class Clip:
    film: int
    order: int  # playback order within the film
    plan: FilmPlan
    # Text + image + decode (not sped up by a group) and the denoising on one GPU.
    fixed_s: float
    denoise_s: float
    # Index (in the clip list) of the clip this one waits for (chain), or -1.
    after: int
    # Whether the clip holds the film's first frame.
    first: bool

    def seconds(self, costs: CostModel, layout: Layout, straddles: bool = False,
                forms: bool = False) -> float:
        if layout.size == 1:
            return self.fixed_s + self.denoise_s + costs.one_gpu_swap_s(self.plan)
        ratio = costs.gang_ratio(self.plan, layout) + (
            costs.straddle_ratio(self.plan, layout) if straddles else 0.0)
        return self.fixed_s + self.denoise_s * ratio + (costs.gang_setup_s if forms else 0.0)


@dataclass(frozen=True, slots=True)
class ClipSystem:
    name: str  # "official", "xdit", "naive"
    # Fixed layout of every group, or None: the wave planner.
    layout: Layout | None
    min_efficiency: float = 0.0
    # Fixed groups: also group the GPUs a node has left over across nodes (paying ib).
    straddle: bool = True

    @property
    def label(self) -> str:
        if self.layout is None:
            return f"waves, eff>={self.min_efficiency:g}"
        lay = self.layout
        text = f"G={lay.size}" if lay.cfg == 1 else f"CFG2xU{lay.sp}"
        return text + ("" if self.straddle or lay.size == 1 else ", in-node")


# Runners that offer a step cache (issue 35): LightX2V (the xdit baseline's CFG-parallel
# runner) ships TeaCache and MagCache; the official script and its one-GPU form offer none,
# so they render a film's scenes exact whatever its `speed:`.
CACHED_RUNNERS = frozenset({"xdit"})


def clips(workload: Workload, costs: CostModel, cached: bool = False) -> list[Clip]:
    """Every segment as a clip; `cached`: with its scene's step cache (CACHED_RUNNERS)."""
    out: list[Clip] = []
    for i, a in enumerate(workload.arrivals):
        plan = a.plan
        image = costs.image(plan) if plan.film.profile.requires_image else 0.0
        last: dict[str, int] = {}  # unit id -> index of its last clip (chains, start_from)
        for sp in plan.scenes:
            for unit in sp.units:
                first_of_unit = len(out)
                for seg in unit.segments:
                    denoise = sum(ph.num_steps * costs.step_s(
                        plan, seg.window.size, plan.film.profile.experts[ph.expert])
                        * (costs.phase_calls_factor(plan, sp.scene.id, k) if cached else 1.0)
                        for k, ph in enumerate(plan.phases))
                    fixed = costs.text() + image + costs.decode_per_latent(plan) * seg.window.size
                    out.append(Clip(i, len(out), plan, fixed, denoise,
                                    last[unit.after] if unit.after else -1,
                                    sp.scene.index == 0 and unit.index == 0 and seg.index == 0))
                last[unit.id] = first_of_unit + len(unit.segments) - 1
    return out


def systems(gpus: int) -> list[ClipSystem]:
    """Every configuration of every baseline the bench searches at this fleet size."""
    out = [ClipSystem("naive", SINGLE)]
    for g in SP_SIZES:
        if g <= gpus:
            out.append(ClipSystem("official", Layout(1, g)))
            if g < 8 and 8 % g:
                out.append(ClipSystem("official", Layout(1, g), straddle=False))
        if 2 * g <= gpus:
            out.append(ClipSystem("xdit", Layout(2, g)))
            if 2 * g < 8 and 8 % (2 * g):
                out.append(ClipSystem("xdit", Layout(2, g), straddle=False))
    for name in ("official", "xdit"):
        out += [ClipSystem(name, None, e) for e in (0.8, 0.7, 0.0)]
    return out


def clip_queue(workload: Workload, gpus: int, group: int, costs: CostModel) -> SimResult:
    """The official script on fixed groups of `group` GPUs."""
    return run(workload, gpus, ClipSystem("official", Layout(1, group)), costs)


def run(workload: Workload, gpus: int, system: ClipSystem, costs: CostModel) -> SimResult:
    items = clips(workload, costs, cached=system.name in CACHED_RUNNERS)
    arrivals = [a.time for a in workload.arrivals]
    pool = Gpus(gpus, costs.node_gpus)
    groups = (static_groups(gpus, costs.node_gpus, system.layout, system.straddle)
              if system.layout is not None else None)
    if groups is not None and not groups:
        raise ValueError(f"a group of {system.layout.size} GPUs does not fit in {gpus}")
    free_groups = list(range(len(groups or ())))
    done_at: dict[int, float] = {}
    waiting = list(range(len(items)))
    busy, running = 0.0, []  # running: heap of (end, clip, gpus or group index)
    now = 0.0
    while waiting or running:
        ready = [c for c in waiting if arrivals[items[c].film] <= now
                 and (items[c].after < 0 or items[c].after in done_at)]
        if groups is not None:
            taken, free_groups = free_groups[:len(ready)], free_groups[len(ready):]
            starts = [(c, system.layout, groups[k][0], k, groups[k][1])
                      for c, k in zip(ready, taken, strict=False)]
        else:
            starts = _plan_wave(ready, pool, items, system, costs)
        for c, layout, ids, k, straddles in starts:
            forms = groups is None and pool.forms(ids)
            seconds = items[c].seconds(costs, layout, straddles, forms)
            if groups is None:
                pool.take(ids)
            heapq.heappush(running, (now + seconds, c, k if groups is not None else ids))
            busy += seconds * layout.size
            waiting.remove(c)
        upcoming = [arrivals[items[c].film] for c in waiting if arrivals[items[c].film] > now]
        times = [t for t in (running[0][0] if running else None, min(upcoming, default=None))
                 if t is not None]
        if not times:
            break  # nothing can ever start (cannot happen with finite chains)
        now = min(times)
        while running and running[0][0] <= now:
            _, c, held = heapq.heappop(running)
            done_at[c] = now
            if groups is not None:
                free_groups.append(held)
                free_groups.sort()
            else:
                pool.release(held)
    return SimResult(_films(workload, items, done_at), {"all": gpus}, {"all": busy}, 0.0,
                     note=system.label)


def _plan_wave(ready: list[int], pool: Gpus, items: list[Clip], system: ClipSystem,
               costs: CostModel) -> list[tuple[int, Layout, tuple[int, ...], int, bool]]:
    """Layouts and GPUs for the ready clips, wave by wave (farm.sched.gangs' rule)."""
    out = []
    queue = list(ready)
    while queue and pool.free:
        clip = items[queue[0]]
        layout = _choose(clip, len(queue), pool.free, system, costs)
        ids = pool.find(layout)
        if ids is None:
            layout, ids = SINGLE, pool.find(SINGLE)
        pool.take(ids, runs=False)  # held while planning; run() takes them for good
        out.append((queue.pop(0), layout, ids, -1, pool.straddles(ids, layout)))
    for _, _, ids, _, _ in out:
        pool.release(ids)
    return out


def _choose(clip: Clip, waiting: int, idle: int, system: ClipSystem,
            costs: CostModel) -> Layout:
    if waiting >= idle:
        return SINGLE
    one = clip.seconds(costs, SINGLE)
    best, best_t = SINGLE, one * -(-waiting // idle)
    cfgs = (1,) if system.name == "official" else (1, 2)
    layouts = sorted((Layout(c, g) for c in cfgs for g in SP_SIZES if c * g <= idle),
                     key=lambda lay: lay.size)
    for lay in layouts:
        if lay.size == 1:
            continue
        r = costs.gang_ratio(clip.plan, lay)
        if 1.0 / (r * lay.size) < system.min_efficiency:
            continue
        t = clip.seconds(costs, lay) * -(-waiting // (idle // lay.size))
        if t < best_t * (1 - 1e-9):
            best, best_t = lay, t
    return best


def _films(workload: Workload, items: list[Clip], done_at: dict[int, float]) -> tuple:
    out = []
    for i, a in enumerate(workload.arrivals):
        mine = [c for c in range(len(items)) if items[c].film == i]
        first = next(done_at.get(c) for c in mine if items[c].first)
        done = max(done_at[c] for c in mine) if all(c in done_at for c in mine) else None
        out.append(FilmResult(a.film_id, a.time, first, done,
                              "SUCCEEDED" if done is not None else "UNFINISHED"))
    return tuple(out)
