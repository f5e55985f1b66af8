"""Nodes: the scheduler keeps a Ulysses group inside a node where one has room (the
runtime's worker ids name their node: "<pool>-<replica>-<n>@<node>"), the gang rule counts
only groups a node can hold, and a phase may be told to wait for a gang of at least G."""

from __future__ import annotations

from farm.sched.gangs import GangPolicy
from farm.sched.placement import _by_node, node_of
from farm.sim.compare import RfConfig, reelfarm
from farm.sim.costs import CostModel
from farm.sim.engine import Simulation
from farm.sim.fleet import generalists
from farm.sim.workload import trailer

T2V = "t2v-a14b"


def test_node_of_reads_the_runtime_worker_id():
    assert node_of("t2v-high-3-1@10.0.0.7") == "10.0.0.7"
    assert node_of("w1") == ""  # no node named: one node for all (tests, toy farms)


def test_a_block_goes_to_the_node_that_fits_it_best():
    order = ["a@n0", "b@n0", "c@n0", "d@n1", "e@n1", "f@n1", "g@n1", "h@n2"]
    # a lead on n0 gives way: n0 has 3 free, the block needs 4; n1 holds it exactly
    assert _by_node(["a@n0", None, None, None], order, 4, set()) == ("d@n1", "e@n1", "f@n1",
                                                                      "g@n1")
    # two blocks of two: best fit fills n0's leftover before breaking into n1
    assert _by_node([None] * 4, order, 2, set()) == ("a@n0", "b@n0", "d@n1", "e@n1")
    # a node of cold workers (last ran the other expert) loses to a warm one
    assert _by_node([None] * 2, order, 2, {"a@n0", "b@n0", "c@n0"}) == ("d@n1", "e@n1")


def test_the_gang_rule_counts_groups_a_node_holds():
    policy = CostModel().gang_policy(0.5)  # CFG parallel at its calibrated efficiency
    # 16 idle GPUs as 8 + 8: Ulysses 8 fits twice; as 4 x 4 it never does
    whole = policy.choose(T2V, 720, 4.0, waiting=2, idle=16, nodes=(8, 8))
    broken = policy.choose(T2V, 720, 4.0, waiting=2, idle=16, nodes=(4, 4, 4, 4))
    assert whole.sp == 8 and broken.sp <= 4
    assert policy.choose(T2V, 720, 4.0, waiting=2, idle=16) == whole  # no nodes: one node


def test_a_minimum_gang_waits_instead_of_one_gpu():
    policy = GangPolicy(min_size=8)
    assert policy.choose(T2V, 720, 4.0, waiting=40, idle=8).size >= 8
    assert policy.choose(T2V, 720, 4.0, waiting=1, idle=3).size >= 8  # waits for it


def test_simulated_gangs_stay_in_their_node():
    costs = CostModel()
    w = trailer()
    sim = Simulation(w, generalists(64, w, costs), costs, config=None)
    assert sim.node["any#000@n000"] == 0 and sim.node["any#063@n007"] == 7
    r = reelfarm(w, 64, costs, RfConfig("generalists"))
    # 6 units x 2 members on 64 GPUs: Ulysses groups inside nodes beat the official's 5s
    assert r.makespan < 269.8
