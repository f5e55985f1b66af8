"""Fleets for the simulator: reelfarm's expert pools sized by the workload's step split.

Each pool serves one expert of one model family ("t2v-a14b/high", ...), sized in
proportion to the denoising work it will get (26:14 for T2V and 15:25 for I2V at 40
steps, weighted by resolution and segment count). Pools are whole multiples of their
largest gang (a windows gang of two needs two workers of the same expert), rounded
down; the GPUs left over become generalists that hold every expert of a family and
swap the resident one when they change pool (`swap_s` each time, half the measured
16 s per clip of the single-GPU offload). The scheduler's balance policy keeps
generalists for whichever pool backs up (farm.sched.placement), so rounding does not
strand a gang with one free worker.

NOTE(decode): decoding and prompt encoding are co-located: every worker also holds the
text encoder and the VAE ("text", "vae"). A 720p decode is ~0.5 % of a segment's GPU
time, so a dedicated decode pool of even one GPU would sit idle >95 % of the time and,
at 8 GPUs, cost 12 % of the farm; co-located, the decode of a unit runs on the
low-noise worker that holds its final latents (locality: nothing moves) and frames
stream from there. Memory: one 14B expert (28 GB bf16) + VAE (0.2 GB) + UMT5 (9.4 GB,
or on CPU) fits an 80 GB H100 with room for 720p activations.
"""

from __future__ import annotations

from farm.sched.output import WorkerSpec
from farm.sim.costs import CostModel
from farm.sim.engine import SimWorker
from farm.sim.workload import Workload


def pool_work(workload: Workload, costs: CostModel) -> dict[str, float]:
    """Denoising GPU-seconds per pool ("<family>/<expert>") in the workload."""
    work: dict[str, float] = {}
    for a in workload.arrivals:
        plan = a.plan
        for unit in plan.units:
            for k, phase in enumerate(plan.phases):
                pool = f"{plan.film.profile.family}/{plan.film.profile.experts[phase.expert]}"
                members = len(unit.segments)
                work[pool] = work.get(pool, 0.0) + members * costs.unit_phase_s(plan, unit, k)
    return work


def gang_sizes(workload: Workload) -> dict[str, int]:
    """Largest gang (segments of a unit) per pool."""
    out: dict[str, int] = {}
    for a in workload.arrivals:
        prof = a.plan.film.profile
        size = max(len(u.segments) for u in a.plan.units)
        for expert in prof.experts:
            pool = f"{prof.family}/{expert}"
            out[pool] = max(out.get(pool, 1), size)
    return out


def split(gpus: int, work: dict[str, float],
          gangs: dict[str, int] | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """(dedicated GPUs per pool, generalist GPUs per family).

    Dedicated pools get their share of the work rounded down to whole gangs; the rest
    are generalists, given to families by largest remainder of their share. A family
    whose pools got nothing still gets a generalist, so every expert has a holder."""
    gangs = gangs or {}
    pools = sorted(work)
    total = sum(work.values())
    exact = {p: gpus * work[p] / total for p in pools}
    dedicated = {p: int(exact[p] // gangs.get(p, 1)) * gangs.get(p, 1) for p in pools}
    families = sorted({p.split("/")[0] for p in pools})
    if gpus - sum(dedicated.values()) < sum(1 for f in families if not any(
            dedicated[p] for p in pools if p.startswith(f + "/"))):
        raise ValueError(f"{gpus} GPUs cannot serve {len(pools)} expert pools ({', '.join(pools)})")
    left = {f: sum(exact[p] - dedicated[p] for p in pools if p.startswith(f + "/"))
            for f in families}
    spare = gpus - sum(dedicated.values())
    general = {f: int(left[f]) for f in families}
    for f in sorted(families, key=lambda f: (-(left[f] - int(left[f])), f)):
        if sum(general.values()) < spare:
            general[f] += 1
    return dedicated, general


def expert_pools(gpus: int, workload: Workload, costs: CostModel,
                 swap_s: float = 8.0) -> list[SimWorker]:
    work = pool_work(workload, costs)
    dedicated, general = split(gpus, work, gang_sizes(workload))
    fleet = []
    for pool, n in dedicated.items():
        for i in range(n):
            fleet.append(SimWorker(WorkerSpec(f"{pool}#{i}", frozenset({pool, "text", "vae"})), pool))
    for family, n in general.items():
        experts = frozenset(p for p in work if p.startswith(family + "/"))
        for i in range(n):
            spec = WorkerSpec(f"{family}/any#{i}", experts | {"text", "vae"})
            fleet.append(SimWorker(spec, f"{family}/any", swap_s=swap_s))
    return fleet
