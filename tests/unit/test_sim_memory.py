"""Residency in the simulator: no worker ever holds more experts than fit its memory
(issue 34: a generalist that ran another family's experts used to keep them too)."""

from __future__ import annotations

import functools

import pytest

from farm.sched.config import SchedulerConfig
from farm.sim.compare import at_load
from farm.sim.costs import CostModel
from farm.sim.engine import Simulation
from farm.sim.fleet import expert_pools, generalists
from farm.sim.workload import film_queue


class _Checked(Simulation):
    """Checks the resident set after every phase start against the memory rule."""

    checked = 0

    def _swap_s(self, worker, plan, expert, layout, gang=""):
        cost = super()._swap_s(worker, plan, expert, layout, gang)
        spec = self.fleet[worker].spec
        model = expert.rsplit("/", 1)[0] + "/"
        if worker in self.shards:  # offload "shard": 1/n of every expert of the model
            every = [h for h in spec.holds if h.startswith(model)]
            assert self.shards[worker] == (gang, model) and not self.resident[worker]
            assert self.costs.experts_fit(plan, layout, len(every), over=layout.size)
            self.checked += 1
            return cost
        # a dedicated worker holds its one expert; a generalist what _swap_s keeps
        held = self.resident.get(worker) if self.fleet[worker].swap_s else frozenset(
            h for h in spec.holds if "/" in h)
        assert expert in held
        assert all(h.startswith(expert.rsplit("/", 1)[0] + "/") for h in held), held
        assert self.costs.experts_fit(plan, layout, len(held)), (worker, sorted(held))
        self.checked += 1
        return cost


@pytest.mark.parametrize("fleet", [generalists, expert_pools,
                                   functools.partial(generalists, offload="shard")])
@pytest.mark.parametrize("costs", [CostModel(), CostModel(nonweight_bytes=10.5e9)])
def test_no_worker_holds_more_experts_than_fit(fleet, costs):
    # a mixed queue (T2V and I2V, 480p and 720p) on 8 GPUs: generalists change family
    w = at_load(film_queue(10, seed=1), 8, 0.8, costs)
    sim = _Checked(w, fleet(8, w, costs), costs, config=SchedulerConfig(
        gangs=costs.gang_policy()))
    r = sim.run()
    assert all(f.state == "SUCCEEDED" for f in r.films)
    assert sim.checked > 0


def test_a_family_change_pays_a_switch():
    """Before the fix a generalist kept the other family's experts resident for free."""
    costs = CostModel(nonweight_bytes=10.5e9)  # both experts of one model fit, not four
    w = film_queue(10, seed=1).at_rate(0.0)
    sim = _Checked(w, generalists(2, w, costs), costs)
    sim.run()
    assert max(len(h) for h in sim.resident.values()) <= 2
