"""reelfarm vs the official script, an xDiT/LightX2V-style CFG-parallel baseline and naive
one-GPU clips at 8, 64 and 256 H100s (simulated; issue 34).

Drives the real scheduler in the discrete-event simulator (farm/sim) and the baselines'
clip queues (farm/sim/baselines) on one cost model, calibrated on published timings
(farm/sim/costs; the table is printed below the results). Workloads:
  single-film  one 60 s 720p T2V film, 6 scenes of 161 frames (two windows each)
  queue-50     50 mixed films (T2V/I2V, 480p/720p, 1-6 scenes), Poisson arrivals at 80 %
               offered load                                              (seeded)
  backlog-50   the same 50 films, all queued at t = 0                    (seeded)
  mixed-30     a studio's queue: shorts, episodes (3-6 scenes), features (8-12), scenes
               of 1-3 windows or chain units, 480p/720p, T2V/I2V, in bursts, 80 % load
                                                                          (seeded)
Every system is shown at its best configuration, searched per row and seed (reelfarm:
fleet, phase chunks, gang efficiency floor; baselines: G, fixed groups or wave planner,
efficiency floor). Seeded rows show the median over seeds and the makespan's spread.

Columns: makespan, /bound (over the common lower bound: any layout, same costs), /best
(over the fastest system of the row), time to first frame and p50 / p95 film latency
(medians over films), utilisation.

    python bench/scale.py [--quick] [--json] [--gpus 8 64 256] [--seeds 0 1 2]
                          [--workloads ...] [--sensitivity] [--pareto] [--costs legacy]
                          [--adapters] [--speed] [--chains]

Separate tables: --adapters (issue 33: films with 1 of K character LoRAs, adapter
affinity vs blind placement; farm.sim.loras), --speed (issue 35: queue throughput exact
and with MagCache; farm.sim.caching), --chains (issue 37: scenes chained with
`start_from` vs unchained; farm.sim.chains).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from farm.sim import caching, chains, loras, report, targets  # noqa: E402
from farm.sim.baselines import run, systems  # noqa: E402
from farm.sim.compare import RF_CONFIGS, at_load, compare, reelfarm  # noqa: E402
from farm.sim.costs import CostModel  # noqa: E402
from farm.sim.workload import Workload, film_queue, single_scenes, studio_queue, trailer  # noqa: E402

LOAD = 0.8
WORKLOADS = ("single-film", "queue-50", "backlog-50", "mixed-30")
SEEDS = (0, 1, 2)
# The cost model before issue 34 (free CFG parallel, activations shrinking with the
# Ulysses degree, UMT5 at 9.4 GB, no nodes), for the before/after tables.
LEGACY = CostModel(cfg_efficiency=1.0, expert_bytes=28.5e9, text_bytes=9.4e9, vae_bytes=0.2e9,
                   legacy_memory=True, node_gpus=10**6, switch_s=8.0)


def workload(name: str, gpus: int, seed: int, costs: CostModel) -> Workload | None:
    """The named workload at this fleet size and seed (None: not seeded, seed > first)."""
    if name == "single-film":
        return trailer() if seed == SEEDS[0] else None
    if name.startswith("single-"):
        return single_scenes() if seed == SEEDS[0] else None
    if name == "queue-50":
        return at_load(film_queue(50, seed=seed), gpus, LOAD, costs)
    if name == "backlog-50":
        return replace(film_queue(50, seed=seed).at_rate(0.0), name="backlog-50")
    if name == "mixed-30":
        return at_load(studio_queue(30, seed=seed), gpus, LOAD, costs)
    raise ValueError(f"unknown workload {name}")


def rows(gpus_list: list[int], failures: float, seeds: tuple[int, ...] = SEEDS,
         workloads: tuple[str, ...] = WORKLOADS, costs: CostModel | None = None) -> list[dict]:
    """Every system's row for every fleet size, workload and seed."""
    costs = costs or CostModel()
    out = []
    for gpus in gpus_list:
        for name in workloads:
            for seed in seeds:
                w = workload(name, gpus, seed, costs)
                if w is None:
                    continue
                for r in compare(w, gpus, costs, failures_per_gpu_hour=failures, seed=seed):
                    out.append({**r, "seed": seed})
    return out


def _variant(job: tuple[str, CostModel, str | None, list[int], tuple[int, ...],
                         tuple[str, ...]]) -> tuple[str, dict[tuple[int, str], float]]:
    name, costs, swap, gpus_list, seeds, workloads = job
    # a workload variant (scene structure) only changes the single-film rows
    names = (swap,) if swap else workloads
    verdict = report.verdicts(rows(gpus_list, 0.0, seeds, names, costs))
    return name, {(v["gpus"], "single-film" if v["workload"] == swap else v["workload"]):
                  v["ratio"] for v in verdict}


def sensitivity(gpus_list: list[int], seeds: tuple[int, ...], workloads: tuple[str, ...],
                processes: int = 2) -> dict[str, dict[tuple[int, str], float]]:
    """reelfarm / best baseline (median over seeds) per row under each cost variant."""
    jobs = [(name, costs, swap, gpus_list, seeds, workloads)
            for name, costs, swap in report.variants(CostModel())
            if swap is None or "single-film" in workloads]
    with multiprocessing.Pool(processes) as pool:
        return dict(pool.map(_variant, jobs, chunksize=1))


def pareto(gpus: int, name: str, seed: int) -> str:
    """Every configuration of every system on one row: makespan, TTFF, p50 latency."""
    costs = CostModel()
    w = workload(name, gpus, seed, costs)
    lines = [f"Pareto view, {gpus} GPUs, {name}, seed {seed}: makespan / TTFF / p50 latency (s)"]
    runs = [(f"reelfarm {config.label}", reelfarm(w, gpus, costs, config))
            for config in RF_CONFIGS]
    runs += [(f"{s.name} {s.label}", run(w, gpus, s, costs)) for s in systems(gpus)]
    for label, r in sorted(runs, key=lambda lr: lr[1].makespan):
        ttff = sorted(f.ttff for f in r.films if f.ttff is not None)
        lat = sorted(f.latency for f in r.films if f.latency is not None)
        lines.append(f"  {label:<44} {r.makespan:>9.1f} {ttff[len(ttff) // 2]:>8.1f} "
                     f"{lat[len(lat) // 2]:>8.1f}")
    return "\n".join(lines)


def resilience(gpus: int, per_gpu_hour: float, seed: int) -> str:
    """reelfarm on the queue with seeded worker failures (lost data, 120 s restarts)."""
    costs = CostModel()
    queue = at_load(film_queue(50, seed=seed), gpus, LOAD, costs)
    calm = reelfarm(queue, gpus, costs)
    rough = reelfarm(queue, gpus, costs, failures_per_gpu_hour=per_gpu_hour, seed=seed)
    ok = sum(f.state == "SUCCEEDED" for f in rough.films)
    return (f"reelfarm, {gpus} GPUs, queue-50, {per_gpu_hour:g} failures per GPU-hour: "
            f"{rough.num_failures} failures, {ok}/{len(rough.films)} films succeeded, "
            f"makespan {rough.makespan:.0f} s (fault-free {calm.makespan:.0f} s)")


def extras(args: argparse.Namespace, seeds: tuple[int, ...]) -> str:
    """The tables of --adapters, --speed and --chains (median over `seeds`)."""
    costs, out = CostModel(), []
    if args.adapters:
        rs = loras.rows(args.gpus, seeds, costs)
        out.append(json.dumps(rs, indent=1) if args.json else
                   "adapter affinity (issue 33), reelfarm on expert pools:\n"
                   + loras.table(rs, costs))
    if args.speed:
        rs = caching.rows(args.gpus, seeds, costs, films=args.films)
        out.append(json.dumps(rs, indent=1) if args.json else
                   "step caching (issue 35), films per hour on backlog-50:\n" + caching.table(rs))
    if args.chains:
        rs = chains.rows(args.gpus, costs)
        out.append(json.dumps(rs, indent=1) if args.json else
                   "start_from chains (issue 37), 8 films all queued at t = 0:\n"
                   + chains.table(rs))
    return "\n\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    ap.add_argument("--gpus", type=int, nargs="+", default=[8, 64, 256])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    ap.add_argument("--quick", action="store_true", help="one seed (0)")
    ap.add_argument("--costs", choices=("calibrated", "legacy"), default="calibrated")
    ap.add_argument("--sensitivity", action="store_true",
                    help="reelfarm / best baseline per row under each cost assumption varied")
    ap.add_argument("--pareto", action="store_true", help="every configuration, 64-GPU queue")
    ap.add_argument("--processes", type=int, default=2, help="--sensitivity: variants at once")
    ap.add_argument("--adapters", action="store_true",
                    help="films with 1 of K LoRAs: adapter affinity vs blind placement")
    ap.add_argument("--speed", action="store_true",
                    help="queue throughput exact and with the recommended step cache")
    ap.add_argument("--chains", action="store_true",
                    help="films of start_from chains vs the same films unchained")
    ap.add_argument("--films", type=int, default=50,
                    help="--speed: the queue's first N films (default 50)")
    ap.add_argument("--failures-per-gpu-hour", type=float, default=0.0,
                    help="reelfarm worker failures (seeded Poisson; lost data, 120 s restart)")
    args = ap.parse_args()
    seeds = (SEEDS[0],) if args.quick else tuple(args.seeds)
    started = time.perf_counter()
    if args.sensitivity:
        cells = sensitivity(args.gpus, seeds, tuple(args.workloads), args.processes)
        print("reelfarm makespan / best baseline's (median over seeds; <= 1: reelfarm wins)")
        print(report.sensitivity_table(cells))
        print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")
        return
    if args.pareto:
        print(pareto(64, "queue-50", seeds[0]))
        return
    if args.adapters or args.speed or args.chains:
        print(extras(args, seeds))
        print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")
        return
    costs = LEGACY if args.costs == "legacy" else CostModel()
    rs = rows(args.gpus, args.failures_per_gpu_hour, seeds, tuple(args.workloads), costs)
    if args.json:
        print(json.dumps(rs, indent=1))
        return
    print(report.table(report.aggregate(rs)))
    print("\n/bound: over the common lower bound (any layout on any phase, same costs, "
          "nothing avoidable paid); /best: over the fastest system of the row.")
    print("\ntargets (issue 34), median over seeds:")
    verdict = report.verdicts(rs)
    for line in targets.check(verdict):
        print(f"  {line}")
    notes = targets.losses(verdict)
    print("\nwhere reelfarm loses, and why:" if notes else "\nreelfarm loses no row.")
    for line in notes:
        print(textwrap.fill(line, 118, initial_indent="  - ", subsequent_indent="    "))
    print(f"\ncosts ({args.costs}; farm/sim/costs.py, sources in docs/benchmarks.md):")
    print(report.cost_table(costs))
    print(resilience(64, 0.2, seeds[0]))
    print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
