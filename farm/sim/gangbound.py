"""A lower bound on reelfarm's makespan when phases may run on gangs (pure).

Without gangs a film's critical path is fixed and the bound is max(work / GPUs, path).
With gangs both move: a segment finishes sooner on more GPUs but uses more GPU-seconds.
For a deadline T every scene must finish its denoising within its budget

    B = T - arrival - (prompt [+ image] + its units' decodes)      (the fixed path)

and the least GPU-seconds that meet B is D x h(B / D) for a scene whose units take D
seconds in sequence on one GPU each, where h is the lower convex envelope of the points
(time ratio, GPU-seconds ratio) = (r, r x size) of the gang layouts the scheduler may
use (GangPolicy.options; one GPU is (1, 1)). Convexity covers every way of mixing layouts
between phases; a windows unit of m segments needs m times that. So T is feasible only if

    sum over scenes of m x D x h(B / D)  +  prompt, image and decode work  <=  GPUs x T

and every scene's B >= D x (fastest ratio). The bound is the smallest such T (bisection),
or the arrival bound of farm.sim.metrics if larger. Transfers, expert switches and gang
set-up are left out, and layouts are mixed fractionally, so the bound is optimistic.
"""

from __future__ import annotations

from farm.plan.film import FilmPlan
from farm.sched.gangs import GangPolicy
from farm.sim.costs import CostModel
from farm.sim.workload import Workload

# A scene: (arrival + fixed path, one-GPU denoise path D, members m, hull points)
Scene = tuple[float, float, int, list[tuple[float, float]]]


def hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Lower convex envelope of (ratio, work) points, by ratio ascending."""
    pts = sorted(set(points))
    out: list[tuple[float, float]] = []
    for p in pts:
        while len(out) >= 2 and _cross(out[-2], out[-1], p) <= 0:
            out.pop()
        out.append(p)
    return out


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def least_work(env: list[tuple[float, float]], x: float) -> float:
    """h(x): GPU-seconds ratio needed to finish within x times the one-GPU time."""
    if x >= env[-1][0]:
        return env[-1][1]
    for (r0, w0), (r1, w1) in zip(env, env[1:], strict=False):
        if r0 <= x <= r1:
            return w0 + (w1 - w0) * (x - r0) / (r1 - r0)
    return float("inf")  # faster than the fastest layout


def _scenes(plan: FilmPlan, arrival: float, costs: CostModel,
            policy: GangPolicy) -> tuple[list[Scene], float]:
    film = plan.film
    height = 720 if film.height >= 600 else 480
    per_latent, fastest = costs.decode_per_latent(plan), costs.fastest_decode_per_latent(plan)
    out, fixed_work = [], 0.0
    for sp in plan.scenes:
        g = sp.scene.guidance
        env = hull([(1.0, 1.0)] + [(r, r * lay.size) for e in range(len(g))
                                   for lay, r in policy.options(film.profile.family, height, g[e])])
        start = costs.text() + (costs.image(plan) if sp.scene.image is not None else 0.0)
        latents = sum(sum(w.size for _, w in u.decode_slices) for u in sp.units)
        denoise = sum(costs.unit_phase_s(plan, u, k)
                      for u in sp.units for k in range(len(plan.phases)))
        members = min(len(u.segments) for u in sp.units)
        fixed_work += start + per_latent * latents  # decode GPU-s: at least one pass
        out.append((arrival + start + fastest * latents, denoise, members, env))
    return out, fixed_work


def gang_lower_bound(workload: Workload, gpus: int, costs: CostModel, policy: GangPolicy) -> float:
    scenes: list[Scene] = []
    fixed = 0.0
    for a in workload.arrivals:
        s, w = _scenes(a.plan, a.time, costs, policy)
        scenes += s
        fixed += w
    lo = max(t0 + d * env[0][0] for t0, d, _, env in scenes)

    def feasible(t: float) -> bool:
        need = sum(m * d * least_work(env, (t - t0) / d) for t0, d, m, env in scenes)
        return need + fixed <= gpus * t
    hi = max(lo, 1.0)
    while not feasible(hi):
        hi *= 2
    if feasible(lo):
        return lo
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if feasible(mid) else (mid, hi)
    return hi
