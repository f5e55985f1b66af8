"""The balancer's decision logic: examples with known answers, then properties."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farm.k8s.decide import (
    BalancerState,
    Hysteresis,
    PoolLoad,
    PoolPolicy,
    apportion,
    bounded_split,
    decide,
    step_toward,
)

T2V = [PoolPolicy("High", 26, 2, 7), PoolPolicy("Low", 14, 1, 6)]
NOW = Hysteresis(confirm_rounds=1)


def load(pool: str, queued: int = 0, running: int = 0, replicas: int = 0, busy: float = 0.0):
    return PoolLoad(pool, queued, running, replicas, busy)


def idle(*pools: str) -> dict[str, PoolLoad]:
    return {p: load(p) for p in pools}


def test_idle_farm_goes_to_the_step_split():
    # 8 GPUs, 26:14 -> ideal 5.2 : 2.8 -> 5 : 3, from any start.
    for start in ({"High": 4, "Low": 4}, {"High": 7, "Low": 1}, {"High": 2, "Low": 6}):
        d, _ = decide(idle("High", "Low"), start, T2V, NOW)
        assert d.ideal == pytest.approx({"High": 5.2, "Low": 2.8})
        assert d.target == {"High": 5, "Low": 3}


def test_balanced_farm_holds():
    d, state = decide(idle("High", "Low"), {"High": 5, "Low": 3}, T2V, NOW)
    assert not d.changed and d.reason == "hold: balanced" and state == BalancerState()


def test_i2v_heavy_queue_moves_replicas_to_the_low_pool():
    # I2V films queue low-noise work (15:25 steps): many low phases waiting.
    loads = {"High": load("High", queued=2, running=5, replicas=5, busy=1.0),
             "Low": load("Low", queued=30, running=3, replicas=3, busy=1.0)}
    d, _ = decide(loads, {"High": 5, "Low": 3}, T2V, Hysteresis(confirm_rounds=1, max_moves=8))
    assert d.next["Low"] > 3 and sum(d.next.values()) == 8
    assert d.next == d.target == {"High": 2, "Low": 6}   # bounded: High min 2, Low max 6


def test_busy_replicas_count_when_a_gang_runs_one_phase():
    # One phase on 5 busy replicas (a gang) weighs like 5 occupied replicas, not 1.
    gang = {"High": load("High", running=1, replicas=5, busy=1.0), "Low": load("Low")}
    single = {"High": load("High", running=1, replicas=5, busy=0.2), "Low": load("Low")}
    d_gang, _ = decide(gang, {"High": 5, "Low": 3}, T2V, NOW)
    d_single, _ = decide(single, {"High": 5, "Low": 3}, T2V, NOW)
    assert d_gang.ideal["High"] > d_single.ideal["High"]


def test_min_gain_is_a_schmitt_trigger():
    h = Hysteresis(confirm_rounds=1, min_gain=1.0)
    pols = [PoolPolicy("High", 1, 0, 8), PoolPolicy("Low", 1, 0, 8)]

    def with_ideal_high(x: float) -> dict[str, PoolLoad]:
        # prior 1 each; queued phases chosen so that High's share of 8 is x.
        ratio = x / (8 - x)
        return {"High": load("High", queued=round(1000 * ratio) - 1),
                "Low": load("Low", queued=999)}

    assert not decide(with_ideal_high(5.6), {"High": 5, "Low": 3}, pols, h)[0].changed
    assert decide(with_ideal_high(5.8), {"High": 5, "Low": 3}, pols, h)[0].next == {
        "High": 6, "Low": 2}
    assert not decide(with_ideal_high(5.4), {"High": 6, "Low": 2}, pols, h)[0].changed
    assert decide(with_ideal_high(5.2), {"High": 6, "Low": 2}, pols, h)[0].next == {
        "High": 5, "Low": 3}


def test_a_move_needs_confirm_rounds_in_a_row():
    h = Hysteresis(confirm_rounds=3)
    state = BalancerState()
    start = {"High": 7, "Low": 1}
    for expected_streak in (1, 2):
        d, state = decide(idle("High", "Low"), start, T2V, h, state)
        assert not d.changed and state.streak == expected_streak
    d, state = decide(idle("High", "Low"), start, T2V, h, state)
    assert d.changed and d.next == {"High": 5, "Low": 3}


def test_a_different_target_restarts_the_count():
    h = Hysteresis(confirm_rounds=2)
    _, state = decide(idle("High", "Low"), {"High": 7, "Low": 1}, T2V, h)
    heavy_low = {"High": load("High"), "Low": load("Low", queued=50)}
    d, state = decide(heavy_low, {"High": 7, "Low": 1}, T2V, h, state)
    assert not d.changed and state.streak == 1


def test_max_moves_paces_the_change():
    d, _ = decide(idle("High", "Low"), {"High": 2, "Low": 6}, T2V,
                  Hysteresis(confirm_rounds=1, max_moves=2))
    assert d.next == {"High": 4, "Low": 4} and d.target == {"High": 5, "Low": 3}


def test_missing_metrics_hold():
    d, _ = decide({"High": load("High")}, {"High": 5, "Low": 3}, T2V, NOW)
    assert not d.changed and "no metrics for Low" in d.reason


def test_out_of_bounds_is_repaired_even_when_holding():
    d, _ = decide(idle("High", "Low"), {"High": 1, "Low": 3}, T2V, Hysteresis(confirm_rounds=5))
    assert d.next == {"High": 2, "Low": 3} and d.changed and "bounds repaired" in d.reason


def test_bad_policies_are_refused():
    with pytest.raises(ValueError):
        PoolPolicy("High", 0, 1, 2)
    with pytest.raises(ValueError):
        PoolPolicy("High", 26, 3, 2)
    with pytest.raises(ValueError):
        Hysteresis(min_gain=0.4)


def test_decision_module_imports_nothing_that_does_io_or_reads_clocks():
    tree = ast.parse(Path(__file__).resolve().parents[2].joinpath("farm/k8s/decide.py").read_text())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"__future__", "math", "collections", "dataclasses"}, names


# ---- properties -------------------------------------------------------------------------

@st.composite
def fleets(draw):
    n = draw(st.integers(2, 4))
    pols, current, loads = [], {}, {}
    for i in range(n):
        lo = draw(st.integers(0, 4))
        hi = draw(st.integers(max(lo, 1), lo + 12))
        name = f"P{i}"
        pols.append(PoolPolicy(name, draw(st.integers(1, 50)), lo, hi))
        current[name] = draw(st.integers(0, hi + 3))
        loads[name] = PoolLoad(name, draw(st.integers(0, 200)), draw(st.integers(0, 20)),
                               draw(st.integers(0, 20)), draw(st.floats(0, 1)))
    return pols, current, loads


hyst = st.builds(Hysteresis, confirm_rounds=st.integers(1, 4), min_gain=st.floats(0.5, 3),
                 max_moves=st.integers(1, 4), prior_phases=st.floats(0.1, 5))


@settings(max_examples=300, deadline=None)
@given(fleets(), hyst)
def test_next_stays_in_bounds_keeps_the_budget_and_moves_at_most_max_moves(fleet, h):
    pols, current, loads = fleet
    d, _ = decide(loads, current, pols, h)
    start = {p.pool: min(max(current[p.pool], p.min_replicas), p.max_replicas) for p in pols}
    assert all(p.min_replicas <= d.next[p.pool] <= p.max_replicas for p in pols)
    assert sum(d.next.values()) == sum(start.values()) == sum(d.target.values())
    assert sum(max(0, d.next[p] - start[p]) for p in start) <= h.max_moves
    assert sum(d.ideal.values()) == pytest.approx(sum(start.values()), abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_ideal_is_proportional_where_no_bound_holds(fleet):
    pols, current, loads = fleet
    budget = sum(min(max(current[p.pool], p.min_replicas), p.max_replicas) for p in pols)
    from farm.k8s.decide import weights

    w = weights(loads, pols, 1.0)
    ideal = bounded_split(w, pols, budget)
    free = [p for p in pols if p.min_replicas + 1e-6 < ideal[p.pool] < p.max_replicas - 1e-6]
    for a in free:
        for b in free:
            assert ideal[a.pool] / w[a.pool] == pytest.approx(ideal[b.pool] / w[b.pool], rel=1e-6)


@settings(max_examples=300, deadline=None)
@given(fleets())
def test_target_is_the_nearest_integer_allocation(fleet):
    pols, current, loads = fleet
    budget = sum(min(max(current[p.pool], p.min_replicas), p.max_replicas) for p in pols)
    from farm.k8s.decide import weights

    ideal = bounded_split(weights(loads, pols, 1.0), pols, budget)
    target = apportion(ideal, pols, budget)
    assert sum(target.values()) == budget
    assert all(abs(target[p] - ideal[p]) < 1 + 1e-9 for p in ideal)
    # No single transfer of one replica gets closer to the ideal (L1).
    def l1(a):
        return sum(abs(a[p] - ideal[p]) for p in ideal)
    for p in pols:
        for q in pols:
            if p != q and target[p.pool] > p.min_replicas and target[q.pool] < q.max_replicas:
                moved = dict(target, **{p.pool: target[p.pool] - 1, q.pool: target[q.pool] + 1})
                assert l1(moved) >= l1(target) - 1e-9


@settings(max_examples=200, deadline=None)
@given(fleets(), hyst)
def test_under_a_steady_load_the_balancer_settles_and_never_flaps(fleet, h):
    pols, current, loads = fleet
    state, seen, alloc = BalancerState(), [], dict(current)
    for _ in range(60):
        d, state = decide(loads, alloc, pols, h, state)
        if d.changed:
            assert d.next not in seen, "returned to an earlier allocation"
            seen.append(dict(alloc))
        alloc = d.next
    final, _ = decide(loads, alloc, pols, h, state)
    assert not final.changed


@given(st.dictionaries(st.sampled_from("ABCD"), st.integers(0, 9), min_size=2),
       st.integers(1, 5))
def test_step_toward_moves_from_surplus_to_deficit(start, k):
    target = dict(zip(start, reversed(list(start.values())), strict=True))
    nxt = step_toward(start, target, k)
    assert sum(nxt.values()) == sum(start.values())
    for p in start:   # never overshoots, never moves the wrong way
        assert min(start[p], target[p]) <= nxt[p] <= max(start[p], target[p])
