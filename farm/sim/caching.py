"""Step caching in the simulator (issue 35): queue throughput exact and with the
recommended cache (`speed: {cache: magcache, threshold: 0.1}`, docs/benchmarks.md).

A phase's transformer time scales by farm.sim.costs.calls_factor: the share of calls the
setting skipped on the toy model, each skipped call still paying what it runs (the
embeddings and head; first-block also its first block). Text, image and decode are not
cached. Baselines get the cache where their runner offers one (baselines.CACHED_RUNNERS:
LightX2V's MagCache for the xdit rows); the official script offers none and runs exact.

Rows per fleet size: reelfarm exact and cached, each baseline exact and (xdit) cached,
every system at its best configuration as in bench/scale.py. Throughput: the queue-50
films all queued at once (backlog-50), films per hour; also queue-50 itself (Poisson at
80 % of the exact load: the same arrivals for every row), its makespan and p50 latency.
"""

from __future__ import annotations

import statistics

from farm.sim.baselines import CACHED_RUNNERS
from farm.sim.compare import at_load, best_baselines, best_reelfarm
from farm.sim.costs import CostModel, calls_factor
from farm.sim.result import SimResult
from farm.sim.workload import film_queue, with_speed
from farm.spec.speed import CacheSetting

# The recommended setting; MagCache's ratios are the checkpoint's own (the simulator only
# reads the threshold: calls_factor).
MAGCACHE = CacheSetting("magcache", (("mag_ratios", (1.0,)), ("max_skip_steps", 3),
                                     ("retention_ratio", 0.2), ("threshold", 0.1)))


def _runs(gpus: int, seed: int, costs: CostModel, load: float,
          films: int) -> dict[str, list]:
    """(system, speed) -> [backlog result, queue result]."""
    out: dict[str, list] = {}
    base = film_queue(films, seed=seed)
    queue = at_load(base, gpus, load, costs)  # arrivals from the exact load, for every row
    for label, setting in (("exact", None), ("magcache 0.1", MAGCACHE)):
        for w in (with_speed(base.at_rate(0.0), setting, label), with_speed(queue, setting, label)):
            out.setdefault(f"reelfarm|{label}", []).append(best_reelfarm(w, gpus, costs, seed=seed))
            for name, (_, r) in best_baselines(w, gpus, costs).items():
                if setting is None or name in CACHED_RUNNERS:
                    out.setdefault(f"{name}|{label}", []).append(r)
    return out


def rows(gpus_list: list[int], seeds: tuple[int, ...], costs: CostModel,
         load: float = 0.8, films: int = 50) -> list[dict]:
    """`films`: queue-50's first `films` films (fewer: a quick run of the same shape)."""
    out = []
    for gpus in gpus_list:
        per_seed = [_runs(gpus, s, costs, load, films) for s in seeds]
        for key in per_seed[0]:
            system, speed = key.split("|")
            backlog: list[SimResult] = [p[key][0] for p in per_seed]
            queue: list[SimResult] = [p[key][1] for p in per_seed]
            lat = [statistics.median(f.latency for f in r.films if f.latency is not None)
                   for r in queue]
            out.append({"gpus": gpus, "system": system, "speed": speed,
                        "films_per_hour": round(statistics.median(
                            3600 * len(r.films) / r.makespan for r in backlog), 2),
                        "queue_makespan_s": round(statistics.median(r.makespan for r in queue), 1),
                        "queue_p50_s": round(statistics.median(lat), 1)})
        best = {r["gpus"]: max(x["films_per_hour"] for x in out if x["gpus"] == r["gpus"]
                               and x["speed"] == "exact" and x["system"] != "reelfarm")
                for r in out}
        for r in out:
            r["vs_best_baseline_exact"] = round(r["films_per_hour"] / best[r["gpus"]], 3)
    return out


def table(rs: list[dict]) -> str:
    lines = [f"{'GPUs':>4} {'system':<9} {'speed':<13} {'films/h':>8} {'/best base exact':>17} "
             f"{'queue makespan':>18} {'p50 s':>8}", "-" * 83]
    for r in rs:
        lines.append(f"{r['gpus']:>4} {r['system']:<9} {r['speed']:<13} "
                     f"{r['films_per_hour']:>8.2f} "
                     f"{r['vs_best_baseline_exact']:>17.3f} {r['queue_makespan_s']:>18.1f} "
                     f"{r['queue_p50_s']:>8.1f}")
    lines.append(f"\nmagcache 0.1: {1 - calls_factor(MAGCACHE):.1%} less transformer time "
                 "(35 % of calls skipped on the toy model, a skipped call still costing 1 %: "
                 "embeddings and head); the official script offers no cache (exact only), "
                 "LightX2V (xdit) offers MagCache / TeaCache.")
    return "\n".join(lines)
