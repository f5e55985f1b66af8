"""Pools that grow and shrink (serving.autoscale, PoolConfig.autoscaling) and workers that
leave cleanly: a draining worker gets no new work, stays until nothing needs it (its work
reported, the results it owns read and freed), then leaves without losing any data. The
multi-host scenario is tests/cluster/test_scale_out.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from ray.serve._private.common import DeploymentID
from ray.serve.config import AutoscalingContext

from farm.engine.executor import FleetChange
from farm.sched.output import SchedulerOutput, TaskReport, WorkerSpec
from farm.sched.scheduler import Scheduler
from serving.autoscale import QUEUED, RUNNING, BacklogPolicy, autoscaling_config, desired_replicas
from serving.config import PoolConfig
from serving.protocol import WorkReport
from serving.ray_executor import RayExecutor
from tests.unit.test_scheduler import ok, one_scene, split_fleet

# ---- the policy ------------------------------------------------------------------------


def context(metrics: dict, current: int) -> AutoscalingContext:
    """Serve's own context, as its controller builds it for a deployment's policy."""
    return AutoscalingContext(
        deployment_id=DeploymentID("PoolHigh", "reelfarm"), deployment_name="PoolHigh",
        app_name="reelfarm", current_num_replicas=current, target_num_replicas=current,
        running_replicas=[], total_num_requests=0.0, total_queued_requests=0.0,
        aggregated_metrics=metrics, raw_metrics={}, capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=4, policy_state={}, last_scale_up_time=None,
        last_scale_down_time=None, current_time=0.0, config=None)


def test_replicas_follow_queued_plus_running_phases():
    assert desired_replicas(5, 1, 1.0, current=1) == 6
    assert desired_replicas(5, 1, 4.0, current=1) == 2  # ceil(6 / 4)
    assert desired_replicas(0, 0, 1.0, current=3) == 0  # Serve's wrapper applies min_replicas
    assert desired_replicas(None, None, 1.0, current=3) == 3  # no report yet: stay


def test_the_policy_reads_the_pool_figures_its_replicas_report():
    policy = BacklogPolicy(phases_per_replica=2)
    # Two replicas report the same pool-wide figures, read at different moments.
    metrics = {QUEUED: {"r1": 3.0, "r2": 5.0}, RUNNING: {"r1": 2.0, "r2": 2.0}}
    assert policy(context(metrics, current=2)) == (4, {})  # ceil((5 + 2) / 2)
    assert policy(context({}, current=2)) == (2, {})
    with pytest.raises(ValueError, match="phases_per_replica"):
        BacklogPolicy(phases_per_replica=0)


def test_autoscaling_settings_are_checked_and_passed_to_serve():
    pool = PoolConfig(name="High", holds=["high"], replicas=2,
                      autoscaling={"min_replicas": 1, "max_replicas": 4})
    config = autoscaling_config(pool)
    assert (config["min_replicas"], config["initial_replicas"], config["max_replicas"]) == (1, 2, 4)
    assert config["policy"]["policy_function"] == "serving.autoscale:BacklogPolicy"
    with pytest.raises(ValidationError, match=r"replicas \(5\) must be within autoscaling"):
        PoolConfig(name="High", holds=["high"], replicas=5, autoscaling={"max_replicas": 4})
    with pytest.raises(ValidationError, match=r"max_replicas \(1\) must be >= .*min_replicas"):
        PoolConfig(name="High", holds=["high"], autoscaling={"min_replicas": 2,
                                                             "max_replicas": 1})
    with pytest.raises(ValidationError, match="min_replicas"):  # the backlog needs a reporter
        PoolConfig(name="High", holds=["high"], autoscaling={"min_replicas": 0,
                                                             "max_replicas": 1})


# ---- the scheduler -----------------------------------------------------------------------


def test_a_draining_worker_gets_no_new_work_and_leaving_keeps_its_data():
    s = split_fleet()
    s.add_worker(WorkerSpec("h2", frozenset({"high"})))
    s.add_film("f", one_scene())
    out = s.schedule(0.0)
    s.update_from_output(ok(out))  # the prompt: its key lives on worker t
    s.drain_worker("h")
    (phase,) = s.schedule(1.0).phases
    assert phase.worker_ids == ("h2",)
    s.drain_worker("t")
    assert not s.remove_worker("t", data_lost=False)  # nothing ran there: no event
    s.update_from_output([TaskReport(phase.task_id, True)])
    low = s.schedule(2.0).phases
    # the prompt made on t is still valid: the low phase reads it, nothing is recomputed
    assert [p.prompt_key for p in low] == [phase.prompt_key]


# ---- the executor ----------------------------------------------------------------------


def executor_with_phase() -> tuple[RayExecutor, Scheduler, object]:
    """A RayExecutor and its scheduler; a high phase handed to worker h."""
    s, ex = split_fleet(), RayExecutor(sink=None)
    for w in s.workers():
        ex.register(w.spec)
    plan = one_scene()
    s.add_film("f", plan)
    ex.add_film("f", plan)
    s.update_from_output(ok(s.schedule(0.0)))
    ex.fleet()
    (phase,) = s.schedule(1.0).phases
    ex.submit(SchedulerOutput(phases=(phase,)))
    return ex, s, phase


def test_a_worker_drains_until_its_work_is_in_and_its_results_are_read():
    ex, s, phase = executor_with_phase()
    assert not ex.drain("h")  # the scheduler does not know yet
    assert ex.fleet().draining == ("h",)
    (item,) = ex.take("h")
    assert not ex.drain("h")  # the phase is still out
    ex.report(WorkReport("h", item.task_id, True, outputs={k: f"ref:{k}" for k in
                                                           item.output_keys}))
    assert not ex.drain("h")  # its handoff lives in h's object store, unread
    ex.submit(SchedulerOutput(freed_keys=item.output_keys))  # the low phase has read it
    assert ex.drain("h")
    ex.leave("h")
    assert ex.fleet() == FleetChange(left=("h",))
    assert ex.take("h") is None and ex.drain("h")  # gone: asking again is harmless


def test_a_lost_worker_is_removed_with_its_data_not_left():
    ex, _, _ = executor_with_phase()
    ex.clock = lambda: 1e9  # every heartbeat long past
    change = ex.fleet()
    assert set(change.removed) == {"h", "l", "t", "v"} and not change.left


# ---- offloaded workers -------------------------------------------------------------------


def test_placement_prefers_a_worker_whose_expert_stays_on_its_gpu():
    """A worker with offload pays the copy in every phase (farm.spec.weights.
    offload_seconds): given the choice, a phase goes to one without; locality still wins."""
    from farm.sched.placement import Need, Round
    from farm.sched.state import WorkerState

    high = Need("high", "tiny")
    slow = WorkerState(WorkerSpec("a", frozenset({"high"}), offload="group"))
    fast = WorkerState(WorkerSpec("b", frozenset({"high"})))
    assert Round([slow, fast], {}).place(high, frozenset(), 1) == ("b",)
    assert Round([slow, fast], {}).place(high, frozenset(), 2) == ("b", "a")
    assert Round([slow, fast], {}).place(high, frozenset(), 1, preferred=("a",)) == ("a",)
