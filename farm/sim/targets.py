"""The targets of bench/scale.py (issue 17), checked on its rows, and a note for every row
where reelfarm loses, saying why (pure).

    single-film  reelfarm's makespan <= the official baseline's, at every fleet size
    backlog-50   reelfarm's throughput (films per hour, all 50 films queued at t = 0)
                 >= 1.3 x the official baseline's

Throughput bound. Both systems finish the same 50 films, so the throughput ratio is the
official makespan over reelfarm's. reelfarm's makespan is at least its lower bound
(farm.sim.metrics.lower_bound, gang layouts of any efficiency allowed):

  - GPU work / GPUs with every segment on one GPU: no layout of the published table
    takes fewer GPU-seconds than one GPU (ratio x size >= 1, equality only at 1 x 1;
    tests/unit/test_sim_gangs.py checks every layout), a band decode never fewer than
    one pass, and switches, gang set-up and transfers only add;
  - each scene's critical path at its fastest layout and decode (farm.sim.gangbound).

So `throughput_ceiling` = official makespan / that bound is an upper bound for any
schedule under this cost model (the official makespan is the simulated one, at its best
G). With the published costs (seed 0): 8 GPUs 22244 s / 20476 s = 1.09x and 64 GPUs
3028 s / 2560 s = 1.18x, both set by the work term: one GPU per segment costs 1025.5
GPU-s per 720p clip (1041.5 s less the 16 s offload) where the official's best groups
(G = 2, 4) spend 1111.8 / 1154.8, i.e. the official loses only 8-13 % to sequence
parallelism, and 1.3x would need it to lose 30 %. At 256 GPUs the bound is 1.38x
(896.9 s / 648.2 s, the critical paths of I2V 720p chain scenes): not excluded.
"""

from __future__ import annotations

from farm.sched.output import Layout
from farm.sim.costs import CostModel
from farm.sim.metrics import lower_bound
from farm.sim.workload import Workload, make_film

THROUGHPUT_TARGET = 1.3
# The loosest gang rule any reelfarm configuration might use: every layout allowed.
ANY_GANG = 1e-6


def _by(rows: list[dict]) -> dict[tuple[int, str, str], dict]:
    return {(r["gpus"], r["workload"], r["system"]): r for r in rows}


def throughput_ceiling(workload: Workload, costs: CostModel, gpus: int,
                       official_makespan: float) -> float:
    """The most reelfarm's throughput on `workload` can exceed the official baseline's:
    the official makespan over reelfarm's lower bound (see the module docstring)."""
    bound = lower_bound(workload, gpus, costs, gangs=costs.gang_policy(ANY_GANG))
    return official_makespan / bound


def check(rows: list[dict], ceilings: dict[int, float] | None = None) -> list[str]:
    """One line per target and fleet size: the numbers and met / NOT met (with the
    throughput ceiling per fleet size, when given)."""
    ceilings = ceilings or {}
    by, out = _by(rows), []
    for gpus in sorted({r["gpus"] for r in rows}):
        rf, off = (by.get((gpus, "single-film", "reelfarm")),
                   by.get((gpus, "single-film", "official")))
        if rf and off:
            ok = rf["makespan_s"] <= off["makespan_s"]
            out.append(f"single film, {gpus:>3} GPUs: makespan {rf['makespan_s']:.1f} s "
                       f"vs official {off['makespan_s']:.1f} s ({off['config']}): "
                       f"{'met' if ok else 'NOT met'}")
        rf, off = by.get((gpus, "backlog-50", "reelfarm")), by.get((gpus, "backlog-50", "official"))
        if rf and off:
            x = rf["throughput_films_per_h"] / off["throughput_films_per_h"]
            cap = f"; bound {ceilings[gpus]:.2f}x" if gpus in ceilings else ""
            out.append(f"backlog of 50, {gpus:>3} GPUs: {rf['throughput_films_per_h']:.2f} vs "
                       f"{off['throughput_films_per_h']:.2f} films/h = {x:.2f}x (target "
                       f">= {THROUGHPUT_TARGET}x{cap}): "
                       f"{'met' if x >= THROUGHPUT_TARGET else 'NOT met'}")
    return out


def losses(rows: list[dict], costs: CostModel, last_arrival: dict[tuple[int, str], float],
           load: float) -> list[str]:
    """A note for every (fleet, workload) where a baseline beats reelfarm's makespan."""
    by, out = _by(rows), []
    for (gpus, workload, system), rf in sorted(by.items()):
        if system != "reelfarm":
            continue
        others = [r for (g, w, s), r in by.items() if (g, w) == (gpus, workload) and s != system]
        best = min(others, key=lambda r: r["makespan_s"])
        if rf["makespan_s"] <= best["makespan_s"]:
            continue
        head = (f"{gpus} GPUs, {workload}: reelfarm {rf['makespan_s']:.1f} s > {best['system']} "
                f"{best['makespan_s']:.1f} s ({best['config']}), "
                f"+{rf['makespan_s'] / best['makespan_s'] - 1:.1%}. Why: ")
        if workload == "single-film":
            out.append(head + _why_film(costs, gpus, best))
        elif workload.startswith("queue"):
            out.append(head + _why_queue(rf, best, last_arrival[(gpus, workload)], load))
        else:
            out.append(head + (_why_naive(costs) if best["system"] == "naive"
                               else _why_backlog(costs, rf)))
    return out


def _why_film(costs: CostModel, gpus: int, best: dict) -> str:
    group = int(best["config"].removeprefix("G="))
    table = costs.speedup("t2v-a14b", 720)
    mine = costs.gang_policy().choose("t2v-a14b", 720, 4.0, waiting=12, idle=gpus)
    faster = (table.ratio(mine, costs.ib_bytes_per_s)
              < table.ratio(Layout(1, group), costs.ib_bytes_per_s))
    per_latent = dict(costs.decode_s)[720] / 21
    return (f"{gpus} GPUs / 12 segments: reelfarm's gang per segment ({mine.cfg}x{mine.sp}) is "
            f"{'faster' if faster else 'no faster'} than the official Ulysses-{group} group by the "
            f"same speedup table, and reelfarm's path adds what the official clip does not pay: "
            f"forming the gangs ({costs.gang_setup_s:g} s, once per unit) and a windows scene "
            f"decoding its 41 latent frames in one causal pass, in bands over the idle workers "
            f"(one pass {41 * per_latent:.1f} s), where each official clip decodes its own 21 "
            f"({21 * per_latent:.1f} s; a visible cut inside every scene).")


def _why_naive(costs: CostModel) -> str:
    plan = make_film("t2v-a14b", 720, [81])
    one, bands = costs.decode_per_latent(plan), costs.band_decode_per_latent(plan, 10, 1)
    return (f"both run one GPU per segment and a backlog keeps every GPU busy; the naive clip "
            f"swaps its experts ({costs.swap_s:g} s per clip), reelfarm's generalists switch "
            f"between phases only where both experts do not fit beside the activations (720p "
            f"on one GPU), but a decode that no idle worker helps runs all its bands on one "
            f"worker: {bands / one:.1f}x a one-pass decode at 720p (the halos), the price of "
            f"frames that are the same bits on any number of workers.")


def _why_backlog(costs: CostModel, rf: dict) -> str:
    chain = 2 * 40 * costs.ref_step_s("i2v-a14b", 720, "high")
    return (f"a backlog is compute-bound, so reelfarm gains at most the GPU-seconds the official "
            f"groups lose to sequence parallelism (the bound in the targets); its makespan is "
            f"{rf['makespan_over_lower_bound']:.2f}x its own lower bound: the films served last "
            f"in fair-share order include I2V 720p chain scenes (two units in sequence, "
            f"{chain:.0f} s of denoising on one GPU), which finish on the gangs the emptying farm "
            f"allows.")


def _why_queue(rf: dict, best: dict, arrival: float, load: float) -> str:
    return (f"at {load:.0%} offered load both keep up, so the makespan is the last arrival "
            f"({arrival:.0f} s) plus that film's latency "
            f"(reelfarm {rf['makespan_s'] - arrival:.0f} s, "
            f"{best['system']} {best['makespan_s'] - arrival:.0f} s): reelfarm's gangs share the "
            f"GPUs idle when a phase starts, where the official gives every clip its G GPUs "
            f"(p95 film latency {rf['p95_latency_s']:.0f} s vs {best['p95_latency_s']:.0f} s).")
