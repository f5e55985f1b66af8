"""Why a task or film failed is a FailureKind named where the failure is known (the
executor that caught it, the scheduler for what it decides), carried on reports and
events to the metrics' `reason` label; and the rules with one home since issue 36 (the
priority range, the executors' checkpoint capabilities)."""

from __future__ import annotations

import pytest

from farm.engine.executor import InlineExecutor, MemberFailed, failure_of
from farm.observe.instruments import FarmMetrics
from farm.sched.fairness import check_priority, priority_problem
from farm.sched.output import (
    FailureKind,
    FilmState,
    FilmStateChanged,
    PrepareTask,
    SchedulerOutput,
    TaskReport,
    TaskRetried,
    WorkerSpec,
)
from serving.protocol import WorkReport
from serving.ray_executor import RayExecutor
from tests.helpers import make_plan, scene
from tests.unit.test_scheduler import make_scheduler, one_scene, prepare, split_fleet

# ---- the scheduler names what it decides ----------------------------------------------------


def test_a_task_that_died_with_its_worker_is_retried_as_worker_lost():
    s = make_scheduler(("h1", {"high"}), ("h2", {"high"}), ("l", {"low"}), ("t", {"text"}),
                       ("v", {"vae"}))
    s.add_film("f", one_scene())
    prepare(s)
    (p,) = s.schedule(1.0).phases
    (retried,) = s.remove_worker(p.worker_ids[0])
    assert isinstance(retried, TaskRetried) and retried.failure is FailureKind.WORKER_LOST


def test_a_report_naming_lost_keys_without_a_kind_is_an_input_loss():
    s = split_fleet()
    s.add_film("f", one_scene())
    prepare(s)
    (p,) = s.schedule(1.0).phases
    (retried,) = s.update_from_output([TaskReport(p.task_id, False, "gone",
                                                  lost_keys=(p.prompt_key,))])
    assert retried.failure is FailureKind.INPUT_LOST


def test_a_film_failing_its_attempts_carries_the_last_reports_kind():
    s = split_fleet(max_attempts=1, exclude_after=5)
    s.add_film("f", one_scene())
    prepare(s)
    (p,) = s.schedule(1.0).phases
    events = s.update_from_output([TaskReport(p.task_id, False, "disk full",
                                              failure=FailureKind.STORAGE)])
    (end,) = [e for e in events if isinstance(e, FilmStateChanged)]
    assert end.state == FilmState.FAILED and end.failure is FailureKind.STORAGE


def test_exclusion_and_cancellation_are_named_by_the_scheduler():
    s = split_fleet(exclude_after=1, max_attempts=9)
    s.add_film("f", make_plan([scene("a"), scene("b")]))
    s.add_film("g", one_scene())
    prepare(s)
    (p, *_) = s.schedule(1.0).phases
    # The error text mentions a lost input: the kind, not the text, decides the label.
    s.update_from_output([TaskReport(p.task_id, False, "input data lost", worker_id="h")])
    s.schedule(2.0)
    ends = {e.film_id: e for e in s.update_from_output([]) if isinstance(e, FilmStateChanged)
            and e.state.is_final}
    assert ends[p.film_id].failure is FailureKind.EXCLUDED
    other = "g" if p.film_id == "f" else "f"
    (cancelled,) = s.cancel_film(other)
    assert cancelled.failure is FailureKind.CANCELLED


# ---- the executors name what they caught ------------------------------------------------------


class Worker:
    """Encodes prompts; denoising raises `error` (or succeeds without it)."""

    def __init__(self, error: Exception | None = None):
        self.error = error

    def encode_prompt(self, order):
        return "prompt"

    def denoise(self, order, prompt, state, condition, exchange):
        if self.error is not None:
            raise self.error
        return "latents"


def inline_phase_report(error: Exception | None, lose_prompt: bool = False) -> TaskReport:
    s = make_scheduler(("w", {"high", "low", "text", "vae"}))
    ex = InlineExecutor({"w": Worker(error)}, sink=None)
    plan = one_scene()
    s.add_film("f", plan)
    ex.add_film("f", plan)
    ex.submit(s.schedule(0.0))
    s.update_from_output(ex.poll(0.0))
    out = s.schedule(1.0)
    if lose_prompt:
        ex.store.clear()
    ex.submit(out)
    (report,) = ex.poll(0.0)
    return report


@pytest.mark.parametrize("error, lose_prompt, kind", [
    (OSError(28, "No space left on device"), False, FailureKind.STORAGE),
    (ValueError("boom"), False, FailureKind.ERROR),
    (TimeoutError("gang timed out"), False, FailureKind.ERROR),  # an OSError, not storage
    (None, True, FailureKind.INPUT_LOST),
])
def test_the_inline_executor_names_the_kind_of_what_it_caught(error, lose_prompt, kind):
    report = inline_phase_report(error, lose_prompt)
    assert not report.ok and report.failure is kind


def test_a_gang_members_failure_has_the_kind_of_its_cause():
    try:
        try:
            raise PermissionError(13, "read-only file system")
        except OSError as cause:
            raise MemberFailed("w1", cause) from cause
    except MemberFailed as exc:
        assert failure_of(exc) is FailureKind.STORAGE


def ray_report(work: WorkReport | None, register: bool = True) -> TaskReport:
    ex = RayExecutor(sink=None)
    if register:
        ex.register(WorkerSpec("w", frozenset({"text"})))
    ex.add_film("f", one_scene())
    ex.submit(SchedulerOutput(prepares=(PrepareTask("f/s1/prepare/a1", "f", "s1", "w", "k"),)))
    if work is not None:
        ex.report(work)
    (report,) = ex.poll(0.0)
    return report


@pytest.mark.parametrize("exc, kind", [
    (OSError(28, "No space left on device"), FailureKind.STORAGE),
    (FileNotFoundError(2, "no such file"), FailureKind.STORAGE),
    (ConnectionResetError(104, "peer"), FailureKind.ERROR),
    (ValueError("input data lost in the text"), FailureKind.ERROR),
])
def test_the_ray_executor_takes_the_kind_the_pool_named(exc, kind):
    # the pool names the kind where it caught the exception (serving/pool.py)
    from farm.engine.executor import failure_of

    report = ray_report(WorkReport("w", "f/s1/prepare/a1", False, f"{type(exc).__name__}: {exc}",
                                   failure=failure_of(exc)))
    assert not report.ok and report.failure is kind


def test_the_ray_executor_reports_lost_inputs_by_key():
    report = ray_report(WorkReport("w", "f/s1/prepare/a1", False, "input lost: ObjectLostError",
                                   lost_keys=("k0",), failure=FailureKind.INPUT_LOST))
    assert report.failure is FailureKind.INPUT_LOST


def test_the_ray_executor_reports_work_for_an_unknown_worker_as_worker_lost():
    assert ray_report(None, register=False).failure is FailureKind.WORKER_LOST


# ---- the metrics count kinds -----------------------------------------------------------------


class Instrument:
    def __init__(self, name: str, seen: list):
        self.name, self.seen = name, seen

    def inc(self, value: float = 1.0, labels: dict | None = None) -> None:
        self.seen.append((self.name, labels))

    set = observe = inc


class Sink:
    def __init__(self):
        self.seen: list = []

    def counter(self, name, doc, labels=()):
        return Instrument(name, self.seen)

    gauge = counter

    def histogram(self, name, doc, buckets, labels=()):
        return Instrument(name, self.seen)


def test_failure_metrics_are_labelled_by_kind_not_by_text():
    sink = Sink()
    FarmMetrics(sink).on_events([
        TaskRetried("f", "f/u/p0/a1", "ValueError: boom", 2, failure=FailureKind.STORAGE),
        # a text the old regex table labelled worker_lost ("worker ... lost")
        FilmStateChanged("f", FilmState.FAILED, "every worker holding 'high' was excluded "
                         "after repeated failures (h); last error: input data lost",
                         failure=FailureKind.EXCLUDED),
    ], ("high", "low"))
    assert sink.seen == [("reelfarm_task_retries_total", {"reason": "storage"}),
                         ("reelfarm_phase_failures_total", {"reason": "storage"}),
                         ("reelfarm_phase_failures_total", {"reason": "excluded"})]


# ---- one home for each rule --------------------------------------------------------------------


def test_the_priority_range_has_one_home():
    assert priority_problem(0) is None and priority_problem(100) is None
    assert priority_problem(101) == "must be in [0, 100], got 101"  # after "film.priority"
    with pytest.raises(ValueError, match=r"priority must be in \[0, 100\], got -1"):
        check_priority(-1)
    with pytest.raises(ValueError, match="priority must be in"):
        split_fleet().add_film("f", one_scene(), priority=101)


def test_every_executor_declares_its_checkpoint_capabilities():
    for ex in (InlineExecutor({}, sink=None), RayExecutor(sink=None)):
        assert ex.checkpoints is None and ex.take_checkpoints() == []
