"""Lower bounds and summary rows.

    LB = max( total GPU work / GPUs,
              max over films   (arrival + critical path of the film),
              max over arrivals t (t + work of the films arriving at or after t / GPUs) )

work = every phase (steps x step cost x segments, one GPU each: no layout costs fewer
GPU-seconds) + prompt + image + decode (one pass); a scene's critical path = prompt (and
image) + for each unit in order (phases + fastest band decode), scenes in parallel. With
gangs the critical-path term is farm.sim.gangbound (deadline feasibility over the lower
convex envelope of the layouts' time and work). Transfers, switches and gang set-up are
left out, so the bound may be optimistic; it is one bound for every system (the clip
baselines pay text, image and a whole decode per clip on top).
"""

from __future__ import annotations

from farm.plan.film import FilmPlan
from farm.sched.gangs import GangPolicy
from farm.sim.costs import CostModel
from farm.sim.gangbound import gang_lower_bound
from farm.sim.result import SimResult
from farm.sim.workload import Workload


def film_work_and_path(plan: FilmPlan, costs: CostModel) -> tuple[float, float]:
    """(GPU-seconds, critical path seconds) of a film on reelfarm."""
    work, path = 0.0, 0.0
    # the decode's GPU-seconds are at least one pass; its time at least every band apart
    per_latent, fastest = costs.decode_per_latent(plan), costs.fastest_decode_per_latent(plan)
    ends: dict[str, float] = {}  # unit id -> when its decode can end at the earliest
    for sp in plan.scenes:
        start = costs.text()
        work += costs.text()
        if sp.scene.image is not None:
            start = max(start, costs.image(plan))
            work += costs.image(plan)
        t = start
        for unit in sp.units:
            t = max(t, ends.get(unit.after, 0.0)) if unit.after else t  # start_from
            for k in range(len(plan.phases)):
                phase_s = costs.unit_phase_s(plan, unit, k)
                work += phase_s * len(unit.segments)
                t += phase_s
            latents = sum(w.size for _, w in unit.decode_slices)
            work += per_latent * latents
            t += fastest * latents
            ends[unit.id] = t
        path = max(path, t)
    return work, path


def lower_bound(workload: Workload, gpus: int, costs: CostModel,
                gangs: GangPolicy | None = None) -> float:
    """LB on the one-GPU-per-segment execution model, or with `gangs` (phases may run on
    gangs: the one-GPU critical path is replaced by farm.sim.gangbound). With a policy
    that admits every layout it bounds every system of the bench (compare.common_bound):
    a clip baseline's GPU-seconds and path are never below these (ratio x size >= 1)."""
    per_film = [film_work_and_path(a.plan, costs) for a in workload.arrivals]
    bound = sum(w for w, _ in per_film) / gpus
    for i, a in enumerate(workload.arrivals):
        path = per_film[i][1] if gangs is None else 0.0
        bound = max(bound, a.time + path,
                    a.time + sum(w for (w, _), b in zip(per_film, workload.arrivals, strict=True)
                                 if b.time >= a.time) / gpus)
    if gangs is not None:
        bound = max(bound, gang_lower_bound(workload, gpus, costs, gangs))
    return bound


def segment_latency(plan: FilmPlan, costs: CostModel) -> float:
    """One segment's latency: the published single-GPU time of one 81-frame clip."""
    height = 720 if plan.film.height >= 600 else 480
    return costs.clip_s(plan.film.profile.family, height, 1)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(result: SimResult, workload: Workload, lb: float, costs: CostModel) -> dict:
    """One bench row (without the gpus / workload / system labels)."""
    plans = {a.film_id: a.plan for a in workload.arrivals}
    ttff = [f.ttff for f in result.films if f.ttff is not None]
    ratio = [f.ttff / segment_latency(plans[f.film_id], costs)
             for f in result.films if f.ttff is not None]
    lat = [f.latency for f in result.films if f.latency is not None]
    util = result.utilisation()
    return {
        "makespan_s": round(result.makespan, 1),
        "lower_bound_s": round(lb, 1),
        "makespan_over_lower_bound": round(result.makespan / lb, 3),
        "utilisation": round(util["all"], 3),
        "utilisation_per_pool": {k: round(v, 3) for k, v in util.items() if k != "all"},
        "ttff_s": round(percentile(ttff, 50), 1),
        "ttff_over_segment_latency": round(percentile(ratio, 50), 3),
        "p50_latency_s": round(percentile(lat, 50), 1),
        "p95_latency_s": round(percentile(lat, 95), 1),
        "films_ok": sum(f.state == "SUCCEEDED" for f in result.films),
        "films": len(result.films),
        "note": result.note,
        "switched_phases": round(result.switched_phases / result.phases, 3) if result.phases
        else 0.0,
    }
