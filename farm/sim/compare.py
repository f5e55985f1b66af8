"""reelfarm against the baselines on one workload and fleet size: the rows of bench/scale.py.

    reelfarm  the real Scheduler on expert pools sized by the step split (farm.sim.fleet)
    official  clips on sequence-parallel groups; the group size G (2..40) that gives the
              shortest makespan on this workload is reported (the baseline's best case)
    naive     one GPU per clip, experts swapped in and out

Queue workloads arrive at a fixed offered load: the mean gap between films is the
average reelfarm GPU work of a film / (load x GPUs), so every fleet size sees the same
pressure (and the same films, in the same order).
"""

from __future__ import annotations

from farm.sim.baselines import clip_queue
from farm.sim.costs import SP_SIZES, CostModel
from farm.sim.engine import Simulation
from farm.sim.fleet import expert_pools
from farm.sim.metrics import film_work_and_path, lower_bound, summary
from farm.sim.result import SimResult
from farm.sim.workload import Workload


def at_load(workload: Workload, gpus: int, load: float, costs: CostModel) -> Workload:
    work = sum(film_work_and_path(a.plan, costs)[0] for a in workload.arrivals)
    return workload.at_rate(work / (len(workload.arrivals) * load * gpus))


def reelfarm(workload: Workload, gpus: int, costs: CostModel, *,
             failures_per_gpu_hour: float = 0.0, seed: int = 0) -> SimResult:
    fleet = expert_pools(gpus, workload, costs)
    return Simulation(workload, fleet, costs, failures_per_gpu_hour=failures_per_gpu_hour,
                      seed=seed).run()


def best_official(workload: Workload, gpus: int, costs: CostModel) -> tuple[int, SimResult]:
    runs = [(g, clip_queue(workload, gpus, g, costs)) for g in SP_SIZES if 2 <= g <= gpus]
    return min(runs, key=lambda gr: (round(gr[1].makespan, 6), gr[0]))


def compare(workload: Workload, gpus: int, costs: CostModel, *,
            failures_per_gpu_hour: float = 0.0, seed: int = 0) -> list[dict]:
    """One row per system, with labels; `makespan_over_best` compares the systems."""
    rf = reelfarm(workload, gpus, costs, failures_per_gpu_hour=failures_per_gpu_hour, seed=seed)
    group, off = best_official(workload, gpus, costs)
    naive = clip_queue(workload, gpus, 1, costs)
    rows = []
    for system, result, g in (("reelfarm", rf, None), ("official", off, group),
                              ("naive", naive, 1)):
        row = {"gpus": gpus, "workload": workload.name, "system": system,
               "config": _config(result) if g is None else f"G={g}"}
        row.update(summary(result, workload, lower_bound(workload, gpus, costs, g), costs))
        rows.append(row)
    best = min(r["makespan_s"] for r in rows)
    for r in rows:
        r["makespan_over_best"] = round(r["makespan_s"] / best, 3)
    return rows


def _config(result: SimResult) -> str:
    """Pools and their GPUs, e.g. "t2v/hi:40 t2v/lo:22 t2v/any:2"."""
    short = {"high": "hi", "low": "lo"}
    return " ".join(f"{pool.split('-')[0]}/{short.get(pool.split('/')[1], pool.split('/')[1])}:{n}"
                    for pool, n in result.pool_gpus.items())
