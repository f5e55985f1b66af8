"""What chained scenes cost (issue 37): the same films with scenes that each start from
the previous scene's last frame (`start_from:`; the plan's edge: the dependant's first
unit comes after the source's last unit), two such chains, or none.

A chained scene waits for its source's decode (its last frame is the conditioning), so a
film's scenes run one after another instead of side by side: the film's critical path
grows from one scene to all of them, while its GPU work stays the same. Rows: reelfarm
and the best baseline (its clips wait for their source clip too) at the best
configuration (farm.sim.compare), per fleet size: makespan, time to first frame, p50
film latency, for `num_films` I2V 480p films of six 81-frame scenes, all queued at t = 0.
"""

from __future__ import annotations

from farm.sim.compare import compare
from farm.sim.costs import CostModel
from farm.sim.workload import CHAINING, chain_films


def rows(gpus_list: list[int], costs: CostModel, num_films: int = 8) -> list[dict]:
    out = []
    for gpus in gpus_list:
        for chaining in CHAINING:
            rs = compare(chain_films(num_films, chaining=chaining), gpus, costs)
            best = min((r for r in rs if r["system"] != "reelfarm"),
                       key=lambda r: r["makespan_s"])
            for r in (rs[0], best):
                out.append({"gpus": gpus, "chaining": chaining, "system": r["system"],
                            "config": r["config"], "makespan_s": r["makespan_s"],
                            "ttff_s": r["ttff_s"], "p50_latency_s": r["p50_latency_s"]})
    base = {(r["gpus"], r["system"]): r["makespan_s"] for r in out
            if r["chaining"] == "unchained"}
    for r in out:
        r["vs_unchained"] = round(r["makespan_s"] / base[(r["gpus"], r["system"])], 3)
    return out


def table(rs: list[dict]) -> str:
    lines = [f"{'GPUs':>4} {'scenes':<11} {'system':<9} {'config':<34} {'makespan s':>11} "
             f"{'/unchained':>10} {'TTFF s':>8} {'p50 s':>8}", "-" * 100]
    for r in rs:
        lines.append(f"{r['gpus']:>4} {r['chaining']:<11} {r['system']:<9} {r['config'][:34]:<34} "
                     f"{r['makespan_s']:>11.1f} {r['vs_unchained']:>10.3f} {r['ttff_s']:>8.1f} "
                     f"{r['p50_latency_s']:>8.1f}")
    return "\n".join(lines)
