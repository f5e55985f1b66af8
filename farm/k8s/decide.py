"""The pool balancer's decision: pure (no I/O, no clocks), deterministic.

The expert pools of a Wan2.2 MoE model form a pipeline: a segment's high-noise phase, then
its low-noise phase. Throughput is set by the slower pool, so GPU replicas should follow the
work each pool has to do. A phase on pool p is `steps[p]` solver steps (T2V-A14B: 26 high,
14 low), so the work waiting for or running on p is

    weight[p] = steps[p] * (queued[p] + occupied[p] + prior)

with occupied = max(running phases, busy fraction x live replicas) (a gang runs one phase on
several replicas) and `prior` a pseudo-count: an idle farm goes back to the plain step split.

One round: clamp the current Serve replicas into [min, max]; split that budget in proportion
to the weights within the bounds (`ideal`, real numbers); round to the nearest integer
allocation with the same sum (`target`); then hysteresis decides whether to move:
- gain: moving must cut the L1 distance to the ideal by at least `min_gain` replicas. With
  two pools and min_gain 1 this is a Schmitt trigger: from 5:3 the balancer goes to 6:2 only
  once the ideal passes 5.75, and comes back only below 5.25. A round right after a move
  never moves back under the same load (the target is the L1-nearest allocation, gain 0);
- confirmation: the same target must come up `confirm_rounds` rounds in a row (one round of
  noisy metrics moves nothing; each move reloads a 28 GB expert);
- pace: at most `max_moves` replicas move per round, from the largest surplus to the
  largest deficit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PoolLoad:
    """What the farm reports about one pool (farm.k8s.metrics reads it from Prometheus)."""

    pool: str
    queued_phases: int
    running_phases: int
    # Live workers of the pool registered with the director.
    replicas: int
    # Share of the pool's slots that run work, 0..1.
    busy_fraction: float


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    pool: str
    # Solver steps of one phase on this pool: its weight in the split.
    steps: float
    min_replicas: int
    max_replicas: int

    def __post_init__(self) -> None:
        if not self.steps > 0:
            raise ValueError(f"{self.pool}: steps must be > 0, got {self.steps}")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"{self.pool}: need 0 <= min_replicas <= max_replicas, got "
                             f"{self.min_replicas}..{self.max_replicas}")


@dataclass(frozen=True, slots=True)
class Hysteresis:
    confirm_rounds: int = 3
    min_gain: float = 1.0
    max_moves: int = 2
    prior_phases: float = 1.0

    def __post_init__(self) -> None:
        if self.confirm_rounds < 1 or self.max_moves < 1:
            raise ValueError("confirm_rounds and max_moves must be at least 1")
        # Below 0.5 two allocations can each look better than the other: flapping.
        if self.min_gain < 0.5:
            raise ValueError(f"min_gain must be at least 0.5 replicas, got {self.min_gain}")
        if not self.prior_phases > 0:
            raise ValueError(f"prior_phases must be > 0, got {self.prior_phases}")


@dataclass(frozen=True, slots=True)
class BalancerState:
    """Carried from one round to the next: the target seen last and for how many rounds."""

    pending: tuple[tuple[str, int], ...] = ()
    streak: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    current: dict[str, int]
    ideal: dict[str, float]
    target: dict[str, int]
    # What to apply now; equals `current` when holding.
    next: dict[str, int]
    reason: str

    @property
    def changed(self) -> bool:
        return self.next != self.current


def weights(loads: Mapping[str, PoolLoad], policies: Sequence[PoolPolicy],
            prior: float) -> dict[str, float]:
    out = {}
    for p in policies:
        load = loads[p.pool]
        occupied = max(float(load.running_phases), load.busy_fraction * load.replicas)
        out[p.pool] = p.steps * (max(load.queued_phases, 0) + max(occupied, 0.0) + prior)
    return out


def bounded_split(w: Mapping[str, float], policies: Sequence[PoolPolicy],
                  budget: int) -> dict[str, float]:
    """x[p] = clamp(lam * w[p], min, max) with sum(x) == budget: proportional to the weights
    except where a bound holds. Bisection on lam (the sum only grows with lam)."""
    lo = sum(p.min_replicas for p in policies)
    hi = sum(p.max_replicas for p in policies)
    if not lo <= budget <= hi:
        raise ValueError(f"budget {budget} outside the bounds' {lo}..{hi}")

    def split(lam: float) -> dict[str, float]:
        return {p.pool: min(max(lam * w[p.pool], p.min_replicas), p.max_replicas)
                for p in policies}

    a, b = 0.0, max(p.max_replicas / w[p.pool] for p in policies)
    for _ in range(200):
        mid = (a + b) / 2
        if sum(split(mid).values()) < budget:
            a = mid
        else:
            b = mid
    return split(b)


def apportion(ideal: Mapping[str, float], policies: Sequence[PoolPolicy],
              budget: int) -> dict[str, int]:
    """The integer allocation nearest to `ideal` (L1) with the same sum, within the bounds:
    floors, then one more for the largest remainders (ties by pool name)."""
    base = {p.pool: min(max(math.floor(ideal[p.pool] + 1e-9), p.min_replicas), p.max_replicas)
            for p in policies}
    left = budget - sum(base.values())
    order = sorted((p for p in policies if base[p.pool] < p.max_replicas),
                   key=lambda p: (-(ideal[p.pool] - base[p.pool]), p.pool))
    for p in order[:max(left, 0)]:
        base[p.pool] += 1
    return base


def step_toward(start: Mapping[str, int], target: Mapping[str, int],
                max_moves: int) -> dict[str, int]:
    """Move at most `max_moves` replicas, each from the largest surplus to the largest
    deficit (ties by pool name); sums stay equal."""
    cur = dict(start)
    for _ in range(max_moves):
        surplus = [(target[p] - cur[p], p) for p in cur if cur[p] > target[p]]
        deficit = [(cur[p] - target[p], p) for p in cur if cur[p] < target[p]]
        if not surplus or not deficit:
            break
        donor, taker = min(surplus)[1], min(deficit)[1]
        cur[donor] -= 1
        cur[taker] += 1
    return cur


def _l1(ideal: Mapping[str, float], alloc: Mapping[str, int]) -> float:
    return sum(abs(ideal[p] - alloc[p]) for p in ideal)


def decide(loads: Mapping[str, PoolLoad], current: Mapping[str, int],
           policies: Sequence[PoolPolicy], hysteresis: Hysteresis = Hysteresis(),
           state: BalancerState = BalancerState()) -> tuple[Decision, BalancerState]:
    """One balancing round: where the replicas should be, and what to apply now."""
    pools = [policy.pool for policy in policies]
    cur = {pool: int(current[pool]) for pool in pools}
    missing = [pool for pool in pools if pool not in loads]
    if missing:
        return Decision(cur, {}, cur, cur, f"hold: no metrics for {', '.join(missing)}"), \
            BalancerState()
    # Bounds first: a pool outside [min, max] is corrected whatever the hysteresis says.
    start = {policy.pool: min(max(cur[policy.pool], policy.min_replicas), policy.max_replicas)
             for policy in policies}
    budget = sum(start.values())
    ideal = bounded_split(weights(loads, policies, hysteresis.prior_phases), policies, budget)
    target = apportion(ideal, policies, budget)
    repair = "bounds repaired; " if start != cur else ""

    def hold(why: str, new_state: BalancerState) -> tuple[Decision, BalancerState]:
        return Decision(cur, ideal, target, start, f"{repair}hold: {why}"), new_state

    if target == start:
        return hold("balanced", BalancerState())
    gain = _l1(ideal, start) - _l1(ideal, target)
    if gain < hysteresis.min_gain:
        return hold(f"gain {gain:.2f} < min_gain {hysteresis.min_gain:g} replicas",
                    BalancerState())
    key = tuple(sorted(target.items()))
    streak = state.streak + 1 if state.pending == key else 1
    new_state = BalancerState(key, streak)
    if streak < hysteresis.confirm_rounds:
        return hold(f"target seen {streak}/{hysteresis.confirm_rounds} rounds", new_state)
    nxt = step_toward(start, target, hysteresis.max_moves)
    moves = ", ".join(f"{pool} {start[pool]}->{nxt[pool]}" for pool in pools
                      if nxt[pool] != start[pool])
    reason = f"{repair}move: {moves} (gain {gain:.2f}, seen {streak} rounds)"
    return Decision(cur, ideal, target, nxt, reason), new_state
