"""The targets of bench/scale.py (issue 34), checked on its verdicts (farm.sim.report
.verdicts: per fleet size and workload, reelfarm's makespan over the best baseline's and
both over the common lower bound, medians over seeds), and a note for every row reelfarm
loses, with the bound that says how much was there to win (pure).

    every row     reelfarm's makespan <= the best baseline's (official, xdit, naive)
    64-GPU queue  reelfarm's makespan <= 1.05 x the common lower bound
"""

from __future__ import annotations

BOUND_TARGET = 1.05
# Why a row can be lost, by workload: what the bound does not see and the baselines avoid.
_WHY = {
    "single-film": (
        "a lone film is latency-bound and every system runs within a few per cent of the "
        "bound: on 8 GPUs its 12 segments run in two waves (one GPU each, then gangs of "
        "two); reelfarm's one-GPU segments switch experts once (8 s, where a one-GPU "
        "official clip offloads for 16 s), but a scene's two windows decode together once "
        "its last phase ends (one 161-frame decode, no cut) in the 10 bands of a 720p film "
        "(fixed, so frames never depend on placement): on the 2 ranks each decode finds "
        "free, the bands' halos make it 1.4x a one-pass decode (14 s), the second wave's "
        "gangs wait for those, and the film ends with one more (8 s), where every official "
        "clip decodes its own 81 frames in 5 s inside its group's time"),
    "backlog": (
        "a backlog is work-bound (the bound is GPU work / GPUs): one-GPU clips pay the 16 s "
        "offload per clip, reelfarm's one-GPU phases few switches (the warm pass keeps a GPU "
        "on its expert) but a band decode that no idle worker helps (2.8x a one-pass decode "
        "at 720p); gangs of sharded workers switch nothing while they stay open, but a new "
        "one loads its shards"),
    "queue": (
        "at 80 % offered load every system keeps up, so the makespan is the last arrival "
        "plus that film's latency: the layout its segments find free when it arrives"),
    "mixed": (
        "bursts of long films with chains of two or three units: the makespan is a burst's "
        "longest chain, each unit waiting for the one before it"),
}


def _kind(workload: str) -> str:
    return next((k for k in _WHY if workload.startswith(k)), "queue")


def check(verdicts: list[dict]) -> list[str]:
    """One line per row: met / NOT met, and the bound target on the 64-GPU queue."""
    out = []
    for v in verdicts:
        ok = v["ratio"] <= 1.0
        out.append(f"{v['gpus']:>3} GPUs {v['workload']:<12} reelfarm / best baseline "
                   f"{v['ratio']:.3f} (worst seed {v['ratio_max']:.3f}): "
                   f"{'met' if ok else 'NOT met'}")
        if v["gpus"] == 64 and v["workload"].startswith("queue"):
            ok = v["rf_over_bound"] <= BOUND_TARGET
            out.append(f"{v['gpus']:>3} GPUs {v['workload']:<12} reelfarm / common bound "
                       f"{v['rf_over_bound']:.3f} (target <= {BOUND_TARGET}): "
                       f"{'met' if ok else 'NOT met'}")
    return out


def losses(verdicts: list[dict]) -> list[str]:
    """A note for every row where the best baseline's makespan beats reelfarm's."""
    out = []
    for v in verdicts:
        if v["ratio"] <= 1.0:
            continue
        out.append(
            f"{v['gpus']} GPUs, {v['workload']}: reelfarm {v['ratio'] - 1:+.1%} over the best "
            f"baseline (median); reelfarm is {v['rf_over_bound']:.3f}x the common bound, the "
            f"best baseline {v['best_over_bound']:.3f}x, so at most "
            f"{1 - 1 / v['best_over_bound']:.1%} of the baseline's makespan was there to win "
            f"under this cost model; {v.get('rf_switched', 0.0):.0%} of reelfarm's phases "
            f"waited for an expert switch. Why: {_WHY[_kind(v['workload'])]}.")
    return out
