"""Which ready task a free worker gets (farm.sched.choice): a warm pass before the
switching pass, decodes sharing idle workers, and queues that always drain."""

from __future__ import annotations

import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.sched.config import SchedulerConfig
from farm.sched.gangs import GangPolicy
from farm.sched.output import PhaseFinished, TaskReport, WorkerSpec
from farm.sched.placement import Need, Round
from farm.sched.scheduler import Scheduler
from farm.sched.state import WorkerState
from farm.sim.costs import CostModel
from farm.sim.engine import Simulation
from farm.sim.fleet import expert_pools, generalists
from farm.sim.workload import film_queue
from tests.helpers import make_plan, scene

GENERALIST = frozenset({"high", "low"})


def _scheduler(*workers: tuple[str, frozenset[str]], **config: object) -> Scheduler:
    s = Scheduler(SchedulerConfig(**config))  # type: ignore[arg-type]
    s.add_worker(WorkerSpec("t", frozenset({"text", "vae"}), 9))
    for wid, holds in workers:
        s.add_worker(WorkerSpec(wid, holds))
    return s


def _report(s: Scheduler, *tasks) -> None:
    s.update_from_output([TaskReport(t.task_id, True) for t in tasks])


def _prepare(s: Scheduler) -> None:
    out = s.schedule(0.0)
    _report(s, *out.prepares)


def test_a_freed_worker_takes_the_phase_of_the_expert_it_holds():
    # one generalist: scene a's high phase runs there; then a's low phase (a switch) and
    # b's high phase (the expert it holds) are ready: b's goes first
    s = _scheduler(("g", GENERALIST))
    s.add_film("f", make_plan([scene("a"), scene("b")]))
    _prepare(s)
    (first,) = s.schedule(1.0).phases
    assert (first.unit_id, first.expert) == ("a/u0", 0)
    _report(s, first)
    (second,) = s.schedule(2.0).phases
    assert (second.unit_id, second.expert, second.worker_ids) == ("b/u0", 0, ("g",))
    _report(s, second)
    (third,) = s.schedule(3.0).phases  # nothing warm left: switch once, then stay
    _report(s, third)
    (fourth,) = s.schedule(4.0).phases
    assert [(p.unit_id, p.expert) for p in (third, fourth)] == [("a/u0", 1), ("b/u0", 1)]


def test_switches_halve_when_workers_keep_their_expert():
    # two generalists, four scenes: each worker stays on one expert where it can
    s = _scheduler(("g0", GENERALIST), ("g1", GENERALIST))
    s.add_film("f", make_plan([scene(c) for c in "abcd"]))
    events, t = [], 0.0
    while s.has_unfinished_films():
        t += 1.0
        out = s.schedule(t)
        events += s.update_from_output(
            [TaskReport(x.task_id, True) for x in (*out.prepares, *out.phases, *out.decodes)])
    runs: dict[str, list[int]] = {}
    for e in sorted((e for e in events if isinstance(e, PhaseFinished)), key=lambda e: e.time):
        runs.setdefault(e.worker_ids[0], []).append(e.phase_index)
    switches = sum(a != b for seq in runs.values() for a, b in zip(seq, seq[1:], strict=False))
    assert switches <= 2, runs  # the round without a warm pass switched at every phase


def test_priority_stays_strict_in_the_warm_pass():
    # g is warm for high; the urgent film's low phase gets it before a lesser film's high
    s = _scheduler(("g", GENERALIST))
    s.add_film("urgent", make_plan([scene("a")]), priority=90)
    _prepare(s)
    (high,) = s.schedule(1.0).phases
    s.add_film("later", make_plan([scene("a")]), priority=10)
    _report(s, *s.schedule(2.0).prepares)  # g still runs the high phase
    _report(s, high)
    (nxt,) = s.schedule(3.0).phases
    assert (nxt.film_id, nxt.expert) == ("urgent", 1)


def test_the_warm_pass_sees_only_warm_or_fresh_workers():
    high, low = Need("high", "tiny"), Need("low", "tiny")
    hot = WorkerState(WorkerSpec("hot", GENERALIST), warm=high)
    fresh = WorkerState(WorkerSpec("fresh", GENERALIST))
    rnd = Round([hot, fresh], {low: 2})
    rnd.warm_only = True
    assert rnd.idle(low, frozenset()) == 1
    assert rnd.place(low, frozenset(), 2) is None  # nothing reserved or remembered
    assert rnd.reserved == set()
    rnd.warm_only = False
    assert sorted(rnd.place(low, frozenset(), 2) or ()) == ["fresh", "hot"]


def test_decodes_ready_together_share_the_idle_workers():
    s = Scheduler(SchedulerConfig(gangs=GangPolicy(tables=())))  # gangs on, no phase gangs
    for i in range(6):
        s.add_worker(WorkerSpec(f"w{i}", frozenset({"high", "low", "text", "vae"})))
    s.add_film("f", make_plan([scene("s1", 9), scene("s2", 9)], width=512, height=32))
    out, t = s.schedule(0.0), 0.0
    while not out.decodes:
        t += 1.0
        _report(s, *out.prepares, *out.phases)
        out = s.schedule(t)
    assert len(out.decodes) == 2 and all(d.bands == 4 for d in out.decodes)
    # 6 idle workers: each decode gets one to start on and two more for its bands,
    # where the first used to take four and the second one
    assert [len(d.band_workers) for d in out.decodes] == [2, 2]
    ranks = [w for d in out.decodes for w in (d.worker_id, *d.band_workers)]
    assert len(set(ranks)) == 6


SHARDED = functools.partial(generalists, offload="shard")


@settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gpus=st.integers(1, 10), films=st.integers(1, 5), seed=st.integers(0, 10**6),
       fleet=st.sampled_from([generalists, expert_pools, SHARDED]),
       steps=st.sampled_from([None, 7]),
       min_gang=st.sampled_from([1, 4]), backlog=st.booleans())
def test_a_queue_always_drains(gpus, films, seed, fleet, steps, min_gang, backlog):
    """The real scheduler in the simulator, on random small fleets and queues: every film
    finishes (the warm pass never leaves work waiting for a worker that will not come)."""
    costs = CostModel()
    if fleet is expert_pools:
        gpus = max(gpus, 4)  # a generalist per family at least
    w = film_queue(films, seed=seed)
    w = w.at_rate(0.0) if backlog else w.at_rate(60.0)
    if steps:
        w = w.with_phase_steps(steps)
    config = SchedulerConfig(gangs=costs.gang_policy(0.8, min_gang))
    r = Simulation(w, fleet(gpus, w, costs), costs, config=config).run()
    assert [f.state for f in r.films] == ["SUCCEEDED"] * films
