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
give: `generalists()` is the fleet where every GPU holds every expert (and pays costs.switch_s to
switch). farm.sim.compare runs both fleets and reports the better one per workload.

NOTE(decode): decoding and prompt encoding are co-located: every worker also holds the
text encoder and the VAE ("text", "vae"). A 720p decode is ~0.5 % of a segment's GPU
time, so a dedicated decode pool of even one GPU would sit idle >95 % of the time and,
at 8 GPUs, cost 12 % of the farm; co-located, the decode of a unit runs on the
low-noise worker that holds its final latents (locality: nothing moves) and frames
stream from there. Memory: one 14B expert (28.6 GB bf16) + VAE (0.5 GB) + UMT5 (11.4 GB)
+ the non-weight memory (28.5 GB at 720p) fits an 80 GB H100 (farm.sim.costs).

NOTE(nodes): workers are named "<id>@n<node>" as the runtime names them (serving.pool),
nodes of costs.node_gpus in fleet order; the scheduler keeps a Ulysses group in one node
where one has room (farm.sched.placement.node_of) and the engine charges one that spans.
"""

from __future__ import annotations

from dataclasses import replace

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


def expert_pools(gpus: int, workload: Workload, costs: CostModel, *, flex: float = FLEX,
                 swap_s: float | None = None, whole_nodes: bool = False) -> list[SimWorker]:
    """Dedicated pools and generalists; `whole_nodes`: pools of whole nodes (a Ulysses
    group of a node's GPUs then never leaves its node), the rest generalists."""
    swap_s = costs.switch_s if swap_s is None else swap_s
    work = pool_work(workload, costs)
    gangs = ({pool: costs.node_gpus for pool in work} if whole_nodes
             else gang_sizes(workload))
    dedicated, general = split(gpus, work, gangs, flex)
    fleet = []
    for pool, n in dedicated.items():
        for i in range(n):
            fleet.append(SimWorker(WorkerSpec(f"{pool}#{i:03d}", frozenset({pool, "text", "vae"})),
                                   pool))
    for family, n in general.items():
        experts = frozenset(p for p in work if p.startswith(family + "/"))
        for i in range(n):
            spec = WorkerSpec(f"{family}/any#{i:03d}", experts | {"text", "vae"})
            fleet.append(SimWorker(spec, f"{family}/any", swap_s=swap_s))
    return on_nodes(fleet, costs.node_gpus)


def generalists(gpus: int, workload: Workload, costs: CostModel, *,
                swap_s: float | None = None, offload: str = "none") -> list[SimWorker]:
    """Every GPU holds every expert of every model in the workload (in host memory) and
    switches the resident one for `swap_s`: the fleet that can put all its GPUs on one
    film, as the official script's groups do (which the baseline lets switch models free).
    `offload` "shard": a gang's ranks keep shards of every expert with the gang (the
    official's FSDP), so a gang switches nothing while it stays open."""
    experts = frozenset(pool_work(workload, costs))
    swap_s = costs.switch_s if swap_s is None else swap_s
    fleet = [SimWorker(WorkerSpec(f"any#{i:03d}", experts | {"text", "vae"}, offload=offload),
                       "any", swap_s=swap_s) for i in range(gpus)]
    return on_nodes(fleet, costs.node_gpus)


def on_nodes(fleet: list[SimWorker], node_gpus: int) -> list[SimWorker]:
    """Name each worker's node as the runtime does ("<id>@<node>", serving.pool): nodes of
    `node_gpus` GPUs in fleet order (the engine charges Ulysses groups across them)."""
    return [replace(w, spec=replace(w.spec, worker_id=f"{w.spec.worker_id}@n{i // node_gpus:03d}"))
            for i, w in enumerate(fleet)]
