"""Gangs under offload "shard" (farm.model.shard) in the scheduler and the simulator: a
gang's ranks keep shards of every expert of the model with the open gang, so the unit's
next phase there switches nothing, another unit may take the open gang, and a one-GPU
phase (whole expert) forgets it. Ulysses groups wait for a node rather than straddle."""

from __future__ import annotations

import pytest

from farm.sched.config import SchedulerConfig
from farm.sched.output import Layout, TaskReport, WorkerSpec
from farm.sched.placement import SHARDS, Need, Round
from farm.sched.scheduler import Scheduler
from farm.sched.state import WorkerState
from farm.sim.compare import RfConfig, reelfarm
from farm.sim.costs import CostModel
from farm.sim.engine import Simulation
from farm.sim.fleet import generalists
from farm.sim.workload import trailer
from tests.helpers import make_plan, scene
from tests.unit.test_gangs import TEST_POLICY

NEED = Need("high", "tiny")  # the films of make_plan are the model "tiny"


def fleet(n: int, offload: str) -> Scheduler:
    s = Scheduler(SchedulerConfig(gangs=TEST_POLICY))
    for i in range(n):
        s.add_worker(WorkerSpec(f"w{i}", frozenset({"high", "low", "text", "vae"}),
                                offload=offload))
    return s


def run_film(s: Scheduler, film: str, t: float) -> tuple[list, float]:
    """Every task of a lone film reported done as soon as it starts: its phases, in order."""
    s.add_film(film, make_plan([scene("s1", 17)]))
    phases = []
    while s.progress(film).state.value not in ("SUCCEEDED", "FAILED"):
        out = s.schedule(t)
        phases += out.phases
        s.update_from_output([TaskReport(x.task_id, True) for x in
                              (*out.prepares, *out.images, *out.phases, *out.decodes)])
        t += 1.0
    return phases, t


@pytest.mark.parametrize("offload", ["shard", "none"])
def test_the_next_film_takes_the_open_shard_gang(offload):
    s = fleet(4, offload)
    first, t = run_film(s, "f1", 0.0)
    assert [p.layout.size for p in first] == [4, 4]
    assert first[1].gang_key == first[0].gang_key  # the unit's next phase: the same gang
    second, _ = run_film(s, "f2", t)
    reused = second[0].gang_key == first[0].gang_key
    assert reused == (offload == "shard")  # with shards the gang is worth keeping
    assert second[0].forms_gang == (not reused)
    if reused:
        assert second[0].worker_ids == first[0].worker_ids


def test_a_failed_phase_closes_its_shard_gang():
    s = fleet(4, "shard")
    first, t = run_film(s, "f1", 0.0)
    s.add_film("f2", make_plan([scene("s1", 17)]))
    out = s.schedule(t)
    while not out.phases:
        s.update_from_output([TaskReport(x.task_id, True) for x in out.prepares])
        t += 1.0
        out = s.schedule(t)
    (phase,) = out.phases
    assert phase.gang_key == first[0].gang_key  # the open shard gang
    s.update_from_output([TaskReport(phase.task_id, False, error="boom")])
    retry = s.schedule(t + 1).phases[0]
    assert retry.forms_gang and retry.gang_key == retry.task_id  # its gangs were aborted


def test_shard_ranks_of_the_gang_are_warm_for_either_expert():
    workers = [WorkerState(WorkerSpec(f"w{i}", frozenset({"high", "low"}), offload=o),
                           warm=warm, gang="g1")
               for i, (o, warm) in enumerate([("shard", (SHARDS, "tiny"))] * 2
                                             + [("none", None)] * 2)]
    low = Need("low", "tiny")
    rnd = Round(workers, {low: 1})
    assert not rnd.warm_elsewhere(low, frozenset(), ("w0", "w1"), "g1")
    # another gang's shards are not this gang's: two fresh workers are warmer
    assert rnd.warm_elsewhere(low, frozenset(), ("w0", "w1"), "g2")


def test_a_one_gpu_phase_forgets_the_shard_gang():
    s = fleet(2, "shard")
    phases, t = run_film(s, "f1", 0.0)
    assert phases[0].layout.size == 2
    assert {w.gang for w in s.workers()} == {phases[0].gang_key}
    assert {w.warm for w in s.workers()} == {(SHARDS, "tiny")}  # no whole expert
    # a backlog: one GPU per segment; those workers bring a whole expert in
    s.add_film("f2", make_plan([scene(f"s{i}", 17) for i in range(4)]))
    out = s.schedule(t)
    while not out.phases:  # the scenes' prompts first
        s.update_from_output([TaskReport(x.task_id, True) for x in out.prepares])
        t += 1.0
        out = s.schedule(t)
    assert out.phases and all(p.layout == Layout() for p in out.phases)
    ran = {w for p in out.phases for w in p.worker_ids}
    for w in s.workers():
        if w.spec.worker_id in ran:
            assert w.gang is None and w.warm == ("high", "tiny")


def test_a_ulysses_group_waits_for_a_node_rather_than_straddle():
    # two nodes of 4 workers with 2 free each: a group of 4 fits no node now, but will
    workers = [WorkerState(WorkerSpec(f"w{i}@n{i // 4}", frozenset({"high"})))
               for i in range(8)]
    for w in (workers[0], workers[1], workers[4], workers[5]):
        w.busy = 1
    assert Round(workers, {NEED: 1}).place(NEED, frozenset(), 4, distinct=True,
                                           block=4) is None
    # nodes of 2 GPUs never hold a group of 4: it spans them
    small = [WorkerState(WorkerSpec(f"w{i}@n{i // 2}", frozenset({"high"}))) for i in range(4)]
    ids = Round(small, {NEED: 1}).place(NEED, frozenset(), 4, distinct=True, block=4)
    assert ids is not None and len(set(ids)) == 4


def test_the_simulator_charges_shards_once_per_gang():
    costs = CostModel()
    w = trailer()
    plan = w.arrivals[0].plan
    sim = Simulation(w, generalists(8, w, costs, offload="shard"), costs)
    wid, model = next(iter(sim.fleet)), plan.film.model
    high, low = f"{model}/high", f"{model}/low"
    four = Layout(1, 4)
    assert sim._swap_s(wid, plan, high, four, "g1") == 0.0  # start-up: loaded at once
    assert sim._swap_s(wid, plan, low, four, "g1") == 0.0  # the other expert: its shards
    # a new gang of 4: 1/4 of both experts, half a switch
    assert sim._swap_s(wid, plan, high, four, "g2") == pytest.approx(costs.switch_s / 2)
    # one GPU: the whole expert, a switch; the shards are gone
    assert sim._swap_s(wid, plan, low, Layout(), "") == pytest.approx(costs.switch_s)
    assert wid not in sim.shards


def test_shard_gangs_never_switch_a_lone_film():
    costs = CostModel()
    config = RfConfig("sharded", None, 0.01)
    sharded = reelfarm(trailer(), 256, costs, config)
    whole = reelfarm(trailer(), 256, costs, config._replace(fleet="generalists"))
    assert sharded.switched_phases == 0 < whole.switched_phases
    assert sharded.makespan < whole.makespan


