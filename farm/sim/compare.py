"""reelfarm against the baselines on one workload and fleet size: the rows of bench/scale.py.

    reelfarm  the real Scheduler, its gang rule on (farm.sched.gangs), on expert pools
              sized by the step split (farm.sim.fleet) or generalists; the configuration
              of RF_CONFIGS with the shortest makespan is reported
    official  the official script's Ulysses groups (farm.sim.baselines): G = 1 and every
              divisor of the 40 heads, fixed groups (in-node only or not) or the wave
              planner at three efficiency floors; the best is reported
    xdit      CFG 2 x Ulysses clips (xDiT, LightX2V), the same search
    naive     one GPU per clip

Every system runs on the same cost model (farm.sim.costs) and is divided by the same
lower bound (`common_bound`: any layout on any phase, nothing paid that can be avoided).

Queue workloads arrive at a fixed offered load: the mean gap between films is the
average reelfarm GPU work of a film / (load x GPUs), so every fleet size sees the same
pressure (and the same films, in the same order).
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from farm.sched.config import SchedulerConfig
from farm.sim.baselines import ClipSystem, run, systems
from farm.sim.costs import CostModel
from farm.sim.engine import Simulation
from farm.sim.fleet import expert_pools, generalists
from farm.sim.metrics import film_work_and_path, lower_bound, summary
from farm.sim.result import SimResult
from farm.sim.workload import Workload

# The loosest gang rule: every layout allowed (the common bound admits any layout).
ANY_GANG = 1e-6


def at_load(workload: Workload, gpus: int, load: float, costs: CostModel) -> Workload:
    work = sum(film_work_and_path(a.plan, costs)[0] for a in workload.arrivals)
    return workload.at_rate(work / (len(workload.arrivals) * load * gpus))


class RfConfig(NamedTuple):
    """One configuration of reelfarm the bench searches (per row, as the baselines' G).

    fleet: expert pools with a quarter of generalists ("pools", farm.sim.fleet.expert_pools;
        "node-pools": pools of whole nodes), generalists (every GPU holds every expert and
        switches the resident one), or "sharded" generalists (offload "shard": a gang's
        ranks keep shards of every expert with the gang, as the official's FSDP groups do,
        so a gang switches nothing; farm.model.shard);
    phase_steps: each expert's steps as one phase (None), or chunks of <= 7 steps (more
        points where the scheduler re-decides gang sizes; exact handoffs between them);
    min_efficiency: gangs wasting at most 25 % of their GPU-seconds (0.8, the default: a
        burst arriving later finds few GPUs tied up in wide gangs), up to 43 % (0.7) or any
        (0.01: what the baselines' wave planners are also searched with);
    min_gang / max_gang: gangs of any size, or of at least 4 or 8 GPUs (phases wait for
        them, as clips wait for a group of G: large farms where chains of units make the
        critical path), at most max_gang GPUs per segment;
    film_order: between the films of the (one) tenant, fair share or admission order
        (SchedulerConfig.film_order; the clip baselines dispatch in admission order)."""

    fleet: str
    phase_steps: int | None = None
    min_efficiency: float = 0.8
    min_gang: int = 1
    max_gang: int = 80
    film_order: str = "share"

    @property
    def label(self) -> str:
        return (f"{self.fleet} phases<={self.phase_steps} eff>={self.min_efficiency:g} "
                f"gangs>={self.min_gang}" + (f" <={self.max_gang}" if self.max_gang < 80 else "")
                + (f" {self.film_order}" if self.film_order != "share" else ""))


RF_CONFIGS: tuple[RfConfig, ...] = (
    RfConfig("pools"), RfConfig("pools", 7), RfConfig("generalists"),
    RfConfig("generalists", 7), RfConfig("generalists", None, 0.7),
    RfConfig("generalists", None, 0.01), RfConfig("generalists", None, 0.8, 4),
    RfConfig("generalists", None, 0.8, 8), RfConfig("node-pools", 7, 0.8, 8),
    RfConfig("sharded", 7), RfConfig("sharded", None, 0.01), RfConfig("sharded", 7, 0.8, 4),
    RfConfig("sharded", 7, 0.8, 4, 8), RfConfig("sharded", None, 0.8, 8, 8),
    RfConfig("sharded", 7, 0.8, 8, 8), RfConfig("generalists", film_order="fifo"),
    RfConfig("sharded", 7, film_order="fifo"), RfConfig("sharded", None, 0.8, 16, 16, "fifo"))


def reelfarm(workload: Workload, gpus: int, costs: CostModel,
             config: RfConfig = RF_CONFIGS[0], *, failures_per_gpu_hour: float = 0.0,
             seed: int = 0, gangs: bool = True, adapter_affinity: str = "prefer") -> SimResult:
    """The real scheduler on expert pools (or generalists); with `gangs`, its gang rule on
    the cost model's speedup tables (farm.sched.gangs)."""
    steps = config.phase_steps
    if steps is not None:
        workload = workload.with_phase_steps(steps)
    fleet = config.fleet
    if fleet in ("generalists", "sharded"):
        workers = generalists(gpus, workload, costs,
                              offload="shard" if fleet == "sharded" else "none")
    else:
        workers = expert_pools(gpus, workload, costs, whole_nodes=fleet == "node-pools")
    policy = replace(costs.gang_policy(config.min_efficiency, config.min_gang),
                     max_size=config.max_gang)
    result = Simulation(workload, workers, costs, failures_per_gpu_hour=failures_per_gpu_hour,
                        seed=seed, config=SchedulerConfig(
                            gangs=policy if gangs else None,
                            adapter_affinity=adapter_affinity,
                            film_order=config.film_order)).run()
    note = ("gangs" if gangs else "no gangs") + (f", phases<={steps}" if steps else "")
    if gangs and config.min_efficiency != 0.8:
        note += f", efficiency>={config.min_efficiency:g}"
    if gangs and config.min_gang > 1:
        note += f", gangs>={config.min_gang}"
    if gangs and config.max_gang < 80:
        note += f", gangs<={config.max_gang}"
    if config.film_order != "share":
        note += f", films {config.film_order}"
    return replace(result, note=note)


def best_reelfarm(workload: Workload, gpus: int, costs: CostModel, **kwargs: object) -> SimResult:
    runs = [reelfarm(workload, gpus, costs, config, **kwargs)  # type: ignore[arg-type]
            for config in RF_CONFIGS]
    done = [r for r in runs if all(f.state == "SUCCEEDED" for f in r.films)] or runs
    return min(done, key=lambda r: round(r.makespan, 6))


def best_baselines(workload: Workload, gpus: int,
                   costs: CostModel) -> dict[str, tuple[ClipSystem, SimResult]]:
    """Each baseline at its best configuration (shortest makespan; ties: listed first)."""
    best: dict[str, tuple[ClipSystem, SimResult]] = {}
    for system in systems(gpus):
        result = run(workload, gpus, system, costs)
        if system.name not in best or round(result.makespan, 6) < round(
                best[system.name][1].makespan, 6):
            best[system.name] = (system, result)
    return best


def common_bound(workload: Workload, gpus: int, costs: CostModel) -> float:
    """One lower bound for every system: any layout of the table on any phase, one-GPU
    work, fastest decode, no transfers, switches or set-up (farm.sim.metrics)."""
    return lower_bound(workload, gpus, costs, gangs=costs.gang_policy(ANY_GANG))


def compare(workload: Workload, gpus: int, costs: CostModel, *,
            failures_per_gpu_hour: float = 0.0, seed: int = 0) -> list[dict]:
    """One row per system, with labels; `makespan_over_best` compares the systems and
    `makespan_over_lower_bound` divides by the common bound."""
    rf = best_reelfarm(workload, gpus, costs,
                       failures_per_gpu_hour=failures_per_gpu_hour, seed=seed)
    base = best_baselines(workload, gpus, costs)
    bound = common_bound(workload, gpus, costs)
    rows = []
    results = [("reelfarm", rf, f"{_config(rf)} ({rf.note})")]
    results += [(name, r, system.label) for name, (system, r) in base.items()]
    for system, result, config in results:
        row = {"gpus": gpus, "workload": workload.name, "system": system, "config": config}
        row.update(summary(result, workload, bound, costs))
        rows.append(row)
    best = min(r["makespan_s"] for r in rows)
    for r in rows:
        r["makespan_over_best"] = round(r["makespan_s"] / best, 3)
    return rows


def _config(result: SimResult) -> str:
    """Pools and their GPUs, e.g. "t2v/hi:40 t2v/lo:22 t2v/any:2"."""
    short = {"high": "hi", "low": "lo"}

    def name(pool: str) -> str:
        if "/" not in pool:
            return pool  # "any": generalists of every model
        family, part = pool.split("/")
        return f"{family.split('-')[0]}/{short.get(part, part)}"
    return " ".join(f"{name(pool)}:{n}" for pool, n in result.pool_gpus.items())
