"""Gangs in the simulator: phase times from the shared speedup table, the malleable lower
bound, and the targets of bench/scale.py checked on its rows."""

from __future__ import annotations

import pytest

from farm.sched.config import SchedulerConfig
from farm.sched.output import Layout, PhaseFinished
from farm.sim import targets
from farm.sim.compare import at_load, reelfarm
from farm.sim.costs import CostModel
from farm.sim.engine import Simulation
from farm.sim.fleet import generalists
from farm.sim.gangbound import hull, least_work
from farm.sim.metrics import lower_bound
from farm.sim.workload import Arrival, Workload, film_queue, make_film, trailer

T2V = "t2v-a14b"


def test_a_gang_phase_takes_the_tables_ratio_of_the_one_gpu_time():
    costs = CostModel()
    plan = make_film(T2V, 720, [81])
    w = Workload("one", (Arrival("f", plan, 0.0),))
    sim = Simulation(w, generalists(8, w, costs), costs,
                     config=SchedulerConfig(gangs=costs.gang_policy()))
    r = sim.run()
    phases = [e for e in sim.events if isinstance(e, PhaseFinished)]
    assert [len(e.worker_ids) for e in phases] == [8, 8]  # CFG 2 x Ulysses 4, both phases
    step = costs.ref_step_s(T2V, 720, "high")
    ratio = costs.gang_ratio(plan, Layout(2, 4))
    assert ratio == pytest.approx(costs.speedup(T2V, 720).ratio(Layout(2, 4), costs.ib_bytes_per_s))
    # prompt; 26 steps + forming the gang; 14 steps on the same gang (kept open; both
    # experts stay resident beside a quarter of the activations: no switch); decode 21
    # latent frames, its 10 bands over the 8 idle workers. Transfers add milliseconds.
    decode = 21 * costs.band_decode_per_latent(plan, 10, 8)
    assert decode < 5.0 / 1.9  # two bands on the widest rank
    assert phases[1].worker_ids == phases[0].worker_ids
    expected = 1 + (26 * step * ratio + 1) + 14 * step * ratio + decode
    assert r.makespan == pytest.approx(expected, abs=0.05)


def test_generalists_keep_both_experts_only_where_memory_allows():
    costs = CostModel()
    plan = make_film(T2V, 720, [81])
    assert not costs.experts_fit(plan, Layout(1, 1), 2)  # 57 + 9.6 + 21.9 GB > 80 GB
    assert costs.experts_fit(plan, Layout(1, 1), 1)
    assert costs.experts_fit(plan, Layout(2, 2), 2)
    assert costs.experts_fit(make_film(T2V, 480, [81]), Layout(1, 1), 2)
    # One 720p segment on one generalist: it switches experts between its phases.
    w = Workload("one", (Arrival("f", plan, 0.0),))
    alone = Simulation(w, generalists(1, w, costs), costs).run()
    step = costs.ref_step_s(T2V, 720, "high")
    decode = 21 * costs.band_decode_per_latent(plan, 10, 1)  # every band on this worker
    assert alone.makespan == pytest.approx(1 + 40 * step + 8 + decode, abs=0.05)


@pytest.mark.parametrize("gpus", [8, 64, 256])
def test_the_malleable_lower_bound_holds(gpus):
    costs = CostModel()
    for w in (trailer(), at_load(film_queue(6, seed=2), gpus, 0.8, costs)):
        for fleet, k in (("pools", None), ("generalists", 7)):
            r = reelfarm(w, gpus, costs, fleet=fleet, max_phase_steps=k)
            assert r.makespan >= lower_bound(w, gpus, costs, gangs=costs.gang_policy())


def test_gangs_shorten_a_lone_film_and_stay_out_of_a_backlog():
    costs = CostModel()
    with_gangs = reelfarm(trailer(), 64, costs, fleet="generalists")
    without = reelfarm(trailer(), 64, costs, fleet="generalists", gangs=False)
    assert with_gangs.makespan < without.makespan / 3
    backlog = film_queue(12, seed=1).at_rate(0.0)
    sim = Simulation(backlog, generalists(8, backlog, costs), costs,
                     config=SchedulerConfig(gangs=costs.gang_policy()))
    sim.run()
    sizes = [len(e.worker_ids) for e in sim.events if isinstance(e, PhaseFinished)]
    assert sum(1 for n in sizes if n == 1) > 0.5 * len(sizes)  # mostly one GPU per segment


def test_hull_is_the_lower_convex_envelope():
    env = hull([(1.0, 1.0), (0.5, 1.0), (0.3, 1.2), (0.4, 1.5), (0.1, 2.0)])
    assert env == [(0.1, 2.0), (0.3, 1.2), (0.5, 1.0), (1.0, 1.0)]  # (0.4, 1.5) is above it
    assert least_work(env, 0.2) == pytest.approx(1.6)
    assert least_work(env, 2.0) == 1.0 and least_work(env, 0.05) == float("inf")


def rows(rf: float, off: float, backlog: tuple[float, float]) -> list[dict]:
    out = []
    for system, single, films_h in (("reelfarm", rf, backlog[0]), ("official", off, backlog[1])):
        base = {"gpus": 64, "system": system, "config": "G=5" if system == "official" else "any:64",
                "p95_latency_s": 1.0, "makespan_over_lower_bound": 1.1}
        out.append({**base, "workload": "single-film", "makespan_s": single})
        out.append({**base, "workload": "backlog-50", "makespan_s": 50 * 3600 / films_h,
                    "throughput_films_per_h": films_h})
    return out


def test_targets_are_checked_on_the_rows_and_losses_explained():
    won = targets.check(rows(200.0, 235.3, (80.0, 60.0)), {64: 1.4})
    assert won == ["single film,  64 GPUs: makespan 200.0 s vs official 235.3 s (G=5): met",
                   "backlog of 50,  64 GPUs: 80.00 vs 60.00 films/h = 1.33x (target >= 1.3x; "
                   "bound 1.40x): met"]
    lost = rows(250.1, 235.3, (63.0, 60.0))
    assert [line.endswith("NOT met") for line in targets.check(lost)] == [True, True]
    notes = targets.losses(lost, CostModel(), {}, 0.8)  # reelfarm wins the backlog here
    assert len(notes) == 1 and notes[0].startswith("64 GPUs, single-film: reelfarm 250.1 s >")
    assert "64 GPUs / 12 segments" in notes[0] and "forming the gangs" in notes[0]
    notes = targets.losses(rows(200.0, 235.3, (50.0, 60.0)), CostModel(), {}, 0.8)
    assert len(notes) == 1 and notes[0].startswith("64 GPUs, backlog-50: reelfarm")
    assert "1.10x its own lower bound" in notes[0]


def test_no_gang_layout_costs_fewer_gpu_seconds_than_one_gpu():
    """What makes the throughput bound a bound: ratio x size >= 1 for every layout."""
    costs = CostModel()
    for table in costs.speedup_tables():
        for lay in table.layouts(cfg=True, max_size=80):
            work = table.ratio(lay, costs.ib_bytes_per_s) * lay.size
            assert work >= 1.0 and (work > 1.0 or lay.size == 1), (table.family, table.height, lay)


@pytest.mark.parametrize("gpus", [8, 64])
def test_the_throughput_ceiling_bounds_every_configuration(gpus):
    from farm.sim.compare import RF_CONFIGS, best_official

    costs, backlog = CostModel(), film_queue(8, seed=1).at_rate(0.0)
    _, off = best_official(backlog, gpus, costs)
    ceiling = targets.throughput_ceiling(backlog, costs, gpus, off.makespan)
    for fleet, k, eff in RF_CONFIGS + (("generalists", None, 0.3),):
        r = reelfarm(backlog, gpus, costs, fleet=fleet, max_phase_steps=k, min_efficiency=eff)
        assert off.makespan / r.makespan <= ceiling
