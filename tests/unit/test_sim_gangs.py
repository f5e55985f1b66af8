"""Gangs in the simulator: phase times from the shared speedup table, the malleable lower
bound, and the targets of bench/scale.py checked on its rows."""

from __future__ import annotations

import pytest

from farm.sched.config import SchedulerConfig
from farm.sched.output import Layout, PhaseFinished
from farm.sim import targets
from farm.sim.compare import RfConfig, at_load, reelfarm
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
    assert [len(e.worker_ids) for e in phases] == [8, 8]  # Ulysses 8 in one node, both phases
    step = costs.ref_step_s(T2V, 720, "high")
    ratio = costs.gang_ratio(plan, Layout(1, 8))
    assert ratio < costs.gang_ratio(plan, Layout(2, 4))  # CFG parallel at its measured 0.775
    # prompt; 26 steps + forming the gang; the same gang switches to the low-noise expert
    # (both never fit: 8.2 s) and runs 14 steps; decode 21 latent frames, its 10 bands over
    # the 8 idle workers. Transfers add milliseconds.
    decode = 21 * costs.band_decode_per_latent(plan, 10, 8)
    assert phases[1].worker_ids == phases[0].worker_ids
    expected = 1 + (26 * step * ratio + 1) + costs.switch_s + 14 * step * ratio + decode
    assert r.makespan == pytest.approx(expected, abs=0.05)


def test_generalists_keep_both_experts_only_where_memory_allows():
    costs = CostModel()
    plan = make_film(T2V, 720, [81])
    # 2 x 28.6 + 11.4 (UMT5) + 0.5 (VAE) + 28.5 (non-weight, any Ulysses degree) > 80 GB
    assert not costs.experts_fit(plan, Layout(1, 1), 2)
    assert not costs.experts_fit(plan, Layout(2, 4), 2)
    assert not costs.experts_fit(make_film(T2V, 480, [81]), Layout(1, 1), 2)
    assert costs.experts_fit(plan, Layout(1, 1), 1)
    assert CostModel(nonweight_bytes=10.5e9).experts_fit(plan, Layout(1, 1), 2)
    # One 720p segment on one generalist: it switches experts between its phases.
    w = Workload("one", (Arrival("f", plan, 0.0),))
    alone = Simulation(w, generalists(1, w, costs), costs).run()
    step = costs.ref_step_s(T2V, 720, "high")
    decode = 21 * costs.band_decode_per_latent(plan, 10, 1)  # every band on this worker
    assert alone.makespan == pytest.approx(1 + 40 * step + costs.switch_s + decode, abs=0.05)


@pytest.mark.parametrize("gpus", [8, 64, 256])
def test_the_malleable_lower_bound_holds(gpus):
    costs = CostModel()
    for w in (trailer(), at_load(film_queue(6, seed=2), gpus, 0.8, costs)):
        for fleet, k in (("pools", None), ("generalists", 7)):
            r = reelfarm(w, gpus, costs, RfConfig(fleet, k))
            assert r.makespan >= lower_bound(w, gpus, costs, gangs=costs.gang_policy())


def test_gangs_shorten_a_lone_film_and_stay_out_of_a_backlog():
    costs = CostModel()
    with_gangs = reelfarm(trailer(), 64, costs, RfConfig("generalists"))
    without = reelfarm(trailer(), 64, costs, RfConfig("generalists"), gangs=False)
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


def test_targets_are_checked_on_the_verdicts_and_losses_explained():
    won = {"gpus": 64, "workload": "queue-50", "ratio": 0.98, "ratio_max": 1.01,
           "rf_over_bound": 1.04, "best_over_bound": 1.06}
    assert targets.check([won]) == [
        " 64 GPUs queue-50     reelfarm / best baseline 0.980 (worst seed 1.010): met",
        " 64 GPUs queue-50     reelfarm / common bound 1.040 (target <= 1.05): met"]
    assert targets.losses([won]) == []
    lost = {**won, "workload": "single-film", "ratio": 1.05, "best_over_bound": 1.104}
    assert targets.check([lost])[0].endswith("NOT met")
    note = targets.losses([lost])[0]
    assert note.startswith("64 GPUs, single-film: reelfarm +5.0% over the best baseline")
    assert "at most 9.4% of the baseline's makespan was there to win" in note
    assert "expert switch" in note


def test_no_gang_layout_costs_fewer_gpu_seconds_than_one_gpu():
    """What makes the throughput bound a bound: ratio x size >= 1 for every layout."""
    costs = CostModel()
    for table in costs.speedup_tables():
        for lay in table.layouts(cfg=True, max_size=80):
            work = table.ratio(lay, costs.ib_bytes_per_s) * lay.size
            assert work >= 1.0 and (work > 1.0 or lay.size == 1), (table.family, table.height, lay)


@pytest.mark.parametrize("gpus", [8, 64])
def test_no_schedule_of_any_system_beats_the_common_bound(gpus):
    """Every configuration the bench searches, on small versions of its workloads."""
    from farm.sim.baselines import run, systems
    from farm.sim.compare import RF_CONFIGS, common_bound
    from farm.sim.workload import studio_queue

    costs = CostModel()
    for w in (trailer(), at_load(film_queue(6, seed=2), gpus, 0.8, costs),
              film_queue(6, seed=1).at_rate(0.0), at_load(studio_queue(5, seed=1), gpus, 0.8,
                                                          costs)):
        bound = common_bound(w, gpus, costs)
        for config in RF_CONFIGS:
            r = reelfarm(w, gpus, costs, config)
            assert r.makespan >= bound, (w.name, config)
        for system in systems(gpus):
            assert run(w, gpus, system, costs).makespan >= bound, (w.name, system)
