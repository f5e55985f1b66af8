"""The simulator's adapter loads (issue 33), step caches (issue 35) and start_from chains
(issue 37): costs, baselines and bounds that see them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from farm.sched.config import SchedulerConfig
from farm.sim.baselines import clips
from farm.sim.caching import MAGCACHE
from farm.sim.costs import CostModel, calls_factor
from farm.sim.engine import Simulation
from farm.sim.fleet import generalists
from farm.sim.metrics import film_work_and_path
from farm.sim.workload import chain_films, film_queue, with_loras, with_speed
from farm.spec.speed import CacheSetting


def test_calls_factor_from_the_measured_skip_fraction():
    assert calls_factor(None) == 1.0
    assert calls_factor(MAGCACHE) == pytest.approx(1 - 0.35 * 0.99)
    first = CacheSetting("first-block", (("threshold", 0.1),))
    assert calls_factor(first) == pytest.approx(1 - 0.26 * (1 - 1 / 40 - 0.01))
    with pytest.raises(ValueError, match=r"no measured skip fraction for first-block\("
                                         r"threshold=0.2\); measured: first-block"):
        calls_factor(CacheSetting("first-block", (("threshold", 0.2),)))


def test_cached_phases_cost_less_where_the_runner_offers_the_cache():
    costs = CostModel()
    exact = film_queue(3, seed=1)
    cached = with_speed(exact, MAGCACHE, "magcache")
    a, b = exact.arrivals[0].plan, cached.arrivals[0].plan
    unit = a.units[0]
    assert costs.unit_phase_s(b, unit, 0) == pytest.approx(
        costs.unit_phase_s(a, unit, 0) * calls_factor(MAGCACHE))
    assert costs.unit_phase_s(b, unit, 0, cached=False) == costs.unit_phase_s(a, unit, 0)
    # the official script has no cache: its clips are the exact ones; LightX2V's are cached
    assert [c.denoise_s for c in clips(cached, costs)] == [c.denoise_s for c in clips(exact, costs)]
    ratio = [c.denoise_s / e.denoise_s for c, e in zip(clips(cached, costs, cached=True),
                                                       clips(exact, costs), strict=True)]
    assert ratio == pytest.approx([calls_factor(MAGCACHE)] * len(ratio))


def test_baseline_clips_wait_for_the_scene_they_start_from():
    chained = clips(chain_films(1, scenes=4, chaining="one chain"), CostModel())
    assert [c.after for c in chained] == [-1, 0, 1, 2]
    two = clips(chain_films(1, scenes=4, chaining="two chains"), CostModel())
    assert [c.after for c in two] == [-1, 0, -1, 2]
    assert [c.after for c in clips(chain_films(1, scenes=4, chaining="unchained"),
                                   CostModel())] == [-1] * 4


def test_a_chain_lengthens_the_critical_path_not_the_work():
    costs = CostModel()
    free = film_work_and_path(chain_films(1, chaining="unchained").arrivals[0].plan, costs)
    chain = film_work_and_path(chain_films(1, chaining="one chain").arrivals[0].plan, costs)
    # the chained scenes encode no image of their own: less work, a path ~6 scenes long
    assert chain[0] < free[0]
    assert chain[1] > 5 * free[1]
    with pytest.raises(ValueError, match="chaining must be one of unchained"):
        chain_films(1, chaining="fan")


def test_adapter_loads_are_charged_on_the_worker():
    # one GPU runs everything in turn: the makespan grows by exactly the loads' time
    w = with_loras(film_queue(3, seed=2).at_rate(0.0), k=2, lora_bytes=600_000_000)
    spans = {}
    for rate in (1e9, 1e18):
        costs = replace(CostModel(), adapter_bytes_per_s=rate)
        r = Simulation(w, generalists(1, w, costs), costs,
                       config=SchedulerConfig(adapter_affinity="blind")).run()
        spans[rate] = (r.makespan, r.adapter_loads)
    (slow, loads), (fast, loads2) = spans[1e9], spans[1e18]
    assert loads == loads2 > 0
    assert slow - fast == pytest.approx(loads * 0.6, rel=1e-6)
