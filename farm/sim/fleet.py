"""Fleets for the simulator: reelfarm's expert pools sized by the workload's step split.

Each pool serves one expert of one model ("t2v-a14b/high", ...: the simulator names its
models by their family, farm.sim.workload.make_film), sized in
proportion to the denoising work it will get (26:14 for T2V and 15:25 for I2V at 40
steps, weighted by resolution and segment count). Pools are whole multiples of their
largest gang (a windows gang of two needs two workers of the same expert), rounded
down. A quarter of the GPUs (FLEX), plus what rounding leaves, are generalists: they
hold every expert of a family and swap the resident one when they change pool
(`swap_s` each time, half the measured 16 s per clip of the single-GPU offload). The
scheduler prefers dedicated and warm workers and keeps generalists for whichever pool
backs up (farm.sched.placement).

NOTE(flex): static pools cannot follow bursts (a run of I2V chains saturates the I2V
pools while T2V GPUs idle) nor whole gangs at small sizes. Measured in this simulator
(bench/scale.py workloads, before gangs inside a segment): flex 0 -> 0.25 takes the single
film on 8 GPUs from 2356 s to 2084 s and the queue's p95 latency on 64 GPUs from 2234 s to
2083 s; at 256 GPUs nothing changes. Swaps cost ~1 % of a 720p phase, so the flexibility
is cheap.

NOTE(gangs): with gangs inside a segment (farm.sched.gangs) a lone film wants every GPU
on its current phase, high-noise first and low-noise after, which expert pools cannot
give: `generalists()` is the fleet where every GPU holds every expert (and pays SWAP_S to
switch). farm.sim.compare runs both fleets and reports the better one per workload.

NOTE(decode): decoding and prompt encoding are co-located: every worker also holds the
text encoder and the VAE ("text", "vae"). A 720p decode is ~0.5 % of a segment's GPU
time, so a dedicated decode pool of even one GPU would sit idle >95 % of the time and,
at 8 GPUs, cost 12 % of the farm; co-located, the decode of a unit runs on the
low-noise worker that holds its final latents (locality: nothing moves) and frames
stream from there. Memory: one 14B expert (28 GB bf16) + VAE (0.2 GB) + UMT5 (9.4 GB,
or on CPU) fits an 80 GB H100 with room for 720p activations.
"""

from __future__ import annotations

from farm.sched.output import WorkerSpec, model_part
from farm.sim.costs import CostModel
from farm.sim.engine import SimWorker
from farm.sim.workload import Workload


def pool_work(workload: Workload, costs: CostModel) -> dict[str, float]:
    """Denoising GPU-seconds per pool ("<model>/<expert>") in the workload."""
    work: dict[str, float] = {}
    for a in workload.arrivals:
        plan = a.plan
        for unit in plan.units:
            for k, phase in enumerate(plan.phases):
                pool = model_part(plan.film.model, plan.film.profile.experts[phase.expert])
                members = len(unit.segments)
                work[pool] = work.get(pool, 0.0) + members * costs.unit_phase_s(plan, unit, k)
    return work


def gang_sizes(workload: Workload) -> dict[str, int]:
    """Largest gang (segments of a unit) per pool."""
    out: dict[str, int] = {}
    for a in workload.arrivals:
        film = a.plan.film
        size = max(len(u.segments) for u in a.plan.units)
        for expert in film.profile.experts:
            pool = model_part(film.model, expert)
            out[pool] = max(out.get(pool, 1), size)
    return out


def split(gpus: int, work: dict[str, float], gangs: dict[str, int] | None = None,
          flex: float = 0.0) -> tuple[dict[str, int], dict[str, int]]:
    """(dedicated GPUs per pool, generalist GPUs per family).

    Dedicated pools get their share of (1 - flex) of the GPUs, rounded down to whole
    gangs. The rest are generalists: first one for every family with an empty pool (so
    every expert has a holder), then one at a time to the family least covered."""
    gangs = gangs or {}
    pools = sorted(work)
    total = sum(work.values())
    exact = {pool: gpus * work[pool] / total for pool in pools}
    dedicated = {pool: int(exact[pool] * (1 - flex) // gangs.get(pool, 1)) * gangs.get(pool, 1)
                 for pool in pools}
    families = sorted({pool.split("/")[0] for pool in pools})
    mine = {family: [pool for pool in pools if pool.split("/")[0] == family]
            for family in families}
    general = {family: int(any(dedicated[pool] == 0 for pool in mine[family]))
               for family in families}
    spare = gpus - sum(dedicated.values())
    if spare < sum(general.values()):
        raise ValueError(f"{gpus} GPUs cannot serve {len(pools)} expert pools ({', '.join(pools)})")
    short = {family: sum(exact[pool] - dedicated[pool] for pool in mine[family]) - general[family]
             for family in families}
    for _ in range(spare - sum(general.values())):
        family = max(families, key=lambda name: (short[name], -families.index(name)))
        general[family] += 1
        short[family] -= 1
    return dedicated, general


FLEX = 0.25
# A generalist switching its resident expert (half the measured 16 s per clip).
SWAP_S = 8.0


def expert_pools(gpus: int, workload: Workload, costs: CostModel, *, flex: float = FLEX,
                 swap_s: float = SWAP_S) -> list[SimWorker]:
    work = pool_work(workload, costs)
    dedicated, general = split(gpus, work, gang_sizes(workload), flex)
    fleet = []
    for pool, n in dedicated.items():
        for i in range(n):
            fleet.append(SimWorker(WorkerSpec(f"{pool}#{i}", frozenset({pool, "text", "vae"})),
                                   pool))
    for family, n in general.items():
        experts = frozenset(p for p in work if p.startswith(family + "/"))
        for i in range(n):
            spec = WorkerSpec(f"{family}/any#{i}", experts | {"text", "vae"})
            fleet.append(SimWorker(spec, f"{family}/any", swap_s=swap_s))
    return fleet


def generalists(gpus: int, workload: Workload, costs: CostModel, *,
                swap_s: float = SWAP_S) -> list[SimWorker]:
    """Every GPU holds every expert of every model in the workload (in host memory) and
    switches the resident one for `swap_s`: the fleet that can put all its GPUs on one
    film, as the official script's groups do (which the baseline lets switch models free)."""
    experts = frozenset(pool_work(workload, costs))
    return [SimWorker(WorkerSpec(f"any#{i}", experts | {"text", "vae"}), "any", swap_s=swap_s)
            for i in range(gpus)]
