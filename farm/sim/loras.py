"""Adapter affinity in the simulator (issue 33): films that each use 1 of K character
LoRAs, reelfarm placing them with the scheduler's three adapter modes.

    prefer  rule 1 of farm.sched.placement: the worker with the fewest adapter bytes to
            load (then the fewest held bytes evicted), rank order unchanged (default)
    group   also the warm pass: a freed worker runs a phase of the set it holds first
    blind   adapters play no part: the baseline

The workload is queue-50 / backlog-50's films (farm.sim.workload.film_queue), each with
one of K LoRA pairs (one file per expert, rank 64: farm.plan.adapters.DEFAULT_LORA_BYTES)
per family, on reelfarm's expert pools with gangs (its first RF_CONFIGS entry); the
workers keep the runtime's default adapter cache (2 GB: three rank-64 files). A load costs
bytes / CostModel.adapter_bytes_per_s on each worker before the phase (the largest over a
gang's ranks); loads per phase count every rank of a gang.
"""

from __future__ import annotations

import statistics

from farm.plan.adapters import DEFAULT_LORA_BYTES, DEFAULT_LORA_RANK
from farm.sched.config import ADAPTER_AFFINITY
from farm.sim.compare import at_load, reelfarm
from farm.sim.costs import CostModel
from farm.sim.workload import film_queue, with_loras

CHARACTERS = (4, 32)


def loras_workload(name: str, k: int, gpus: int, seed: int, costs: CostModel,
                   load: float = 0.8):
    """queue-50 (Poisson at `load`) or backlog-50 (all at t = 0) with K LoRAs."""
    films = film_queue(50, seed=seed)
    films = at_load(films, gpus, load, costs) if name == "queue-50" else films.at_rate(0.0)
    return with_loras(films, k, DEFAULT_LORA_BYTES, seed)


def rows(gpus_list: list[int], seeds: tuple[int, ...], costs: CostModel,
         workloads: tuple[str, ...] = ("queue-50", "backlog-50")) -> list[dict]:
    """Per fleet size, workload, K and mode: medians over seeds of makespan, loads per
    phase and load seconds per phase; `vs_blind`: makespan over blind's (same seeds)."""
    out = []
    for gpus in gpus_list:
        for name in workloads:
            for k in CHARACTERS:
                runs = {mode: [reelfarm(loras_workload(name, k, gpus, s, costs), gpus, costs,
                                        seed=s, adapter_affinity=mode) for s in seeds]
                        for mode in ADAPTER_AFFINITY}
                blind = statistics.median(r.makespan for r in runs["blind"])
                for mode, rs in runs.items():
                    span = statistics.median(r.makespan for r in rs)
                    out.append({
                        "gpus": gpus, "workload": name, "k": k, "mode": mode,
                        "makespan_s": round(span, 1), "vs_blind": round(span / blind, 3),
                        "loads_per_phase": round(statistics.median(
                            r.adapter_loads / r.phases for r in rs), 3),
                        "load_s_per_phase": round(statistics.median(
                            r.adapter_loads * costs.adapter_load_s(DEFAULT_LORA_BYTES)
                            / r.phases for r in rs), 3)})
    return out


def table(rs: list[dict], costs: CostModel) -> str:
    lines = [f"{'GPUs':>4} {'workload':<11} {'K':>3} {'placement':<9} {'makespan s':>11} "
             f"{'/blind':>7} {'loads/phase':>12} {'load s/phase':>13}", "-" * 76]
    for r in rs:
        lines.append(f"{r['gpus']:>4} {r['workload']:<11} {r['k']:>3} {r['mode']:<9} "
                     f"{r['makespan_s']:>11.1f} {r['vs_blind']:>7.3f} "
                     f"{r['loads_per_phase']:>12.3f} {r['load_s_per_phase']:>13.3f}")
    lines.append(
        f"\nLoRA: rank {DEFAULT_LORA_RANK} over every attention and FFN Linear of the 40 "
        f"blocks of an A14B expert, bf16: {DEFAULT_LORA_BYTES / 1e6:.0f} MB per file (a "
        f"character is a pair, one file per expert); loaded at "
        f"{costs.adapter_bytes_per_s / 1e9:.1f} GB/s host -> GPU: "
        f"{costs.adapter_load_s(DEFAULT_LORA_BYTES):.3f} s; adapter cache 2 GB per worker.")
    return "\n".join(lines)
