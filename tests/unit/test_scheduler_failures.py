"""Scheduler failure handling in the vLLM style: retries, exclusion, worker and data
loss, rollbacks, cancellation, pause (helpers in test_scheduler.py)."""

from __future__ import annotations

import pytest

from farm.sched.output import (
    FilmState,
    FilmStateChanged,
    FramesDecoded,
    PhaseFinished,
    TaskReport,
    TaskRetried,
    WorkerSpec,
)
from tests.helpers import make_plan, scene
from tests.unit.test_scheduler import (
    make_scheduler,
    many_scenes,
    ok,
    one_scene,
    placements_of,
    prepare,
    run,
    split_fleet,
    step,
)

# ---- failures ------------------------------------------------------------------------------


def test_failed_phase_reruns_from_the_last_completed_phase():
    s = split_fleet()
    s.add_film("f", one_scene())
    prepare(s)
    out, _ = step(s, 1.0)
    (high,) = out.phases
    out = s.schedule(2.0)
    (low,) = out.phases
    events = s.update_from_output([TaskReport(low.task_id, False, "oom", worker_id="l")])
    assert [type(e) for e in events] == [TaskRetried] and events[0].attempt == 2
    (retry,) = s.schedule(3.0).phases
    assert (retry.phase_index, retry.attempt) == (1, 2)
    assert retry.members[0].input_key == high.members[0].output_key
    assert retry.task_id != low.task_id and retry.members[0].output_key != low.members[0].output_key


def test_max_attempts_fails_the_film_and_frees_its_data():
    s = make_scheduler(("h", {"high"}), ("l1", {"low"}), ("l2", {"low"}), ("t", {"text"}),
                       ("v", {"vae"}), max_attempts=2, exclude_after=5)
    s.add_film("f", one_scene())
    prepare(s)
    out, _ = step(s, 1.0)
    high_key = out.phases[0].members[0].output_key
    out = s.schedule(2.0)
    s.update_from_output([TaskReport(out.phases[0].task_id, False, "nan")])
    out = s.schedule(3.0)
    events = s.update_from_output([TaskReport(out.phases[0].task_id, False, "nan")])
    (end,) = [e for e in events if isinstance(e, FilmStateChanged)]
    assert end.state == FilmState.FAILED and "failed 2 times" in end.reason and "nan" in end.reason
    assert high_key in s.schedule(4.0).freed_keys


def test_repeatedly_failing_worker_is_excluded_for_that_film():
    s = make_scheduler(("h", {"high"}), ("bad", {"low"}), ("good", {"low"}), ("t", {"text"}),
                       ("v", {"vae"}), exclude_after=2, max_attempts=5)
    s.add_film("f", one_scene())
    prepare(s)
    step(s, 1.0)
    used = []
    for i in range(4):
        out = s.schedule(2.0 + i)
        (low,) = out.phases
        used.append(low.worker_ids[0])
        if low.worker_ids == ("bad",):
            s.update_from_output([TaskReport(low.task_id, False, "xid 79", worker_id="bad")])
        else:
            s.update_from_output([TaskReport(low.task_id, True)])
            break
    assert used.count("bad") == 2 and used[-1] == "good"
    assert s.progress("f").excluded_worker_ids == ("bad",)


def test_film_fails_when_every_holder_of_an_expert_is_excluded():
    s = split_fleet(exclude_after=1, max_attempts=9)
    s.add_film("f", make_plan([scene("a"), scene("b")]))
    prepare(s)
    out = s.schedule(1.0)
    s.update_from_output([TaskReport(out.phases[0].task_id, False, "bad gpu", worker_id="h")])
    out = s.schedule(2.0)
    assert out.num_tasks == 0  # regression: no task of the failed film is handed out
    events = s.update_from_output([])
    (end,) = [e for e in events if isinstance(e, FilmStateChanged)]
    assert end.state == FilmState.FAILED and "excluded" in end.reason


def test_film_starved_by_exclusion_gets_no_task_whose_inputs_are_freed():
    # Regression: scene a was ready to decode when scene b's prompt encoding failed on
    # the only text worker (excluded at once). The film failed mid-round, after its
    # decode had been handed out, so the output freed the decode's input.
    s = make_scheduler(("d", {"high", "low", "vae"}), ("t", {"text"}), exclude_after=1)
    s.add_film("f", make_plan([scene("a"), scene("b")]))
    step(s, 0.0)  # prompt a
    out = s.schedule(1.0)  # prompt b on t, a's high phase on d
    (prep,), (high,) = out.prepares, out.phases
    s.update_from_output([TaskReport(prep.task_id, False, "boom", worker_id="t"),
                               TaskReport(high.task_id, True)])
    out = s.schedule(2.0)  # a's low phase is ready, but the film can no longer finish
    assert out.num_tasks == 0 and high.members[0].output_key in out.freed_keys
    assert s.update_from_output([])[-1].state == FilmState.FAILED


def test_lost_worker_returns_its_unit_to_the_queue_and_late_reports_are_ignored():
    s = make_scheduler(("h1", {"high"}), ("h2", {"high"}), ("l", {"low"}), ("t", {"text"}),
                       ("v", {"vae"}))
    s.add_film("f", one_scene())
    prepare(s)
    out = s.schedule(1.0)
    (p,) = out.phases
    events = s.remove_worker(p.worker_ids[0])
    assert [type(e) for e in events] == [TaskRetried]
    out2 = s.schedule(2.0)
    (retry,) = out2.phases
    assert retry.worker_ids != p.worker_ids and retry.attempt == 2
    assert s.update_from_output([TaskReport(p.task_id, True)]) == []  # late, ignored
    assert s.progress("f").phases_done == 0


def test_worker_losses_neither_blame_the_worker_nor_use_attempts():
    s = make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text"}, 9), ("v", {"vae"}, 9),
                       max_attempts=1, exclude_after=1, max_worker_losses=3)
    s.add_film("f", one_scene())
    prepare(s)
    for i in range(2):
        out = s.schedule(1.0 + i)
        (p,) = out.phases
        assert p.attempt == i + 1
        (retried,) = s.remove_worker("h")
        assert retried.attempt == i + 2 and retried.worker_id is None
        s.add_worker(WorkerSpec("h", frozenset({"high"})))
    assert s.progress("f").excluded_worker_ids == () and s.progress("f").state == FilmState.RUNNING
    s.schedule(4.0)
    (end,) = s.remove_worker("h")
    assert end.state == FilmState.FAILED and "lost its worker 3 times" in end.reason


def test_data_loss_rolls_back_to_initial_noise_with_fresh_names():
    s = make_scheduler(("h", {"high"}), ("l1", {"low"}), ("l2", {"low"}), ("t", {"text"}),
                       ("v", {"vae"}))
    s.add_film("f", one_scene())
    prepare(s)
    out, _ = step(s, 1.0)
    (high,) = out.phases
    out2 = s.schedule(2.0)
    (low,) = out2.phases  # reads the high-noise output living on "h"
    s.remove_worker("h", data_lost=True)
    s.add_worker(WorkerSpec("h", frozenset({"high"})))
    out3 = s.schedule(3.0)
    assert low.task_id in out3.cancelled_task_ids
    (redo,) = out3.phases
    assert redo.phase_index == 0 and redo.attempt == 2  # the second try of phase 0
    assert redo.task_id != high.task_id and redo.members[0].output_key != high.members[0].output_key
    # the stale low phase reports (success or failure): ignored, nothing counted
    assert s.update_from_output([TaskReport(low.task_id, False, "lost input",
                                                  lost_keys=(high.members[0].output_key,))]) == []
    assert s.progress("f").excluded_worker_ids == ()
    events = s.update_from_output(ok(out3)) + run(s)
    assert [e.phase_index for e in events if isinstance(e, PhaseFinished)] == [0, 1]
    assert s.progress("f").state == FilmState.SUCCEEDED


def test_lost_input_report_rolls_back_without_blaming_the_worker():
    s = split_fleet(exclude_after=1)
    s.add_film("f", one_scene())
    prepare(s)
    out, _ = step(s, 1.0)
    key = out.phases[0].members[0].output_key
    out = s.schedule(2.0)
    (low,) = out.phases
    events = s.update_from_output([TaskReport(low.task_id, False, "missing", lost_keys=(key,))])
    assert [type(e) for e in events] == [TaskRetried]
    assert s.progress("f").excluded_worker_ids == ()
    (redo,) = s.schedule(3.0).phases
    assert redo.phase_index == 0


def test_chain_condition_loss_recomputes_the_producer_without_repeating_frames():
    plan = make_plan([scene("s1", 33, continuity="chain", window=5)], family="ti2v-5b")
    s = make_scheduler(("d", {"dense", "text", "vae"}))
    s.add_film("f", plan)
    frames = []
    for i in range(4):  # prompt, u0 phase, u0 decode (makes u1's conditioning)
        out, events = step(s, float(i))
        frames += [(e.frame_start, e.frame_stop) for e in events if isinstance(e, FramesDecoded)]
        if out.decodes:
            cond = out.decodes[0].condition_key
            break
    assert cond is not None
    out = s.schedule(5.0)
    (u1,) = out.phases
    assert u1.condition_key == cond
    s.update_from_output([TaskReport(u1.task_id, False, "lost", lost_keys=(cond,))])
    events = run(s)
    frames += [(e.frame_start, e.frame_stop) for e in events if isinstance(e, FramesDecoded)]
    assert frames == [(0, 17), (17, 33)]
    units = [e.unit_id for e in events if isinstance(e, PhaseFinished)]
    assert units == ["s1/u0", "s1/u1"]  # the producer ran again, then the consumer
    assert s.progress("f").state == FilmState.SUCCEEDED


# ---- cancel, pause -------------------------------------------------------------------------


def test_cancel_stops_the_film_and_frees_everything_once_reported():
    s = split_fleet()
    s.add_film("f", make_plan([scene("a"), scene("b")]))
    prepare(s)
    out = s.schedule(1.0)
    (p,) = out.phases
    events = s.cancel_film("f")
    assert events[0].state == FilmState.CANCELLED
    out2 = s.schedule(2.0)
    assert p.task_id in out2.cancelled_task_ids and out2.num_tasks == 0
    assert {"f:a:prompt:a1", "f:b:prompt:a1"} <= set(out2.freed_keys)
    assert s.update_from_output([TaskReport(p.task_id, True)]) == []
    assert p.members[0].output_key in s.schedule(3.0).freed_keys
    assert s.workers()[0].busy == 0 and not s.has_unfinished_films()


def test_pause_finishes_running_phases_and_resume_continues():
    s = split_fleet()
    s.add_film("f", one_scene())
    prepare(s)
    out = s.schedule(1.0)
    s.pause_film("f")
    events = s.update_from_output(ok(out))
    assert [type(e) for e in events] == [PhaseFinished]
    assert s.schedule(2.0).num_tasks == 0
    assert s.resume_film("f")[0].state == FilmState.RUNNING
    run(s)
    assert s.progress("f").state == FilmState.SUCCEEDED


def test_resumed_film_gets_no_catch_up_burst():
    s = make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text"}, 50), ("v", {"vae"}, 9))
    s.add_film("a", many_scenes(20))
    s.add_film("b", many_scenes(20))
    s.pause_film("b")
    placements_of(s, 10)
    s.resume_film("b")
    films = placements_of(s, 10)
    assert films.count("a") >= 3


def test_invalid_arguments_raise():
    s = split_fleet()
    with pytest.raises(ValueError, match="priority"):
        s.add_film("f", one_scene(), priority=101)
    with pytest.raises(ValueError, match="slots"):
        s.add_worker(WorkerSpec("x", frozenset({"high"}), slots=0))
    s.add_film("f", one_scene())
    with pytest.raises(ValueError, match="already exists"):
        s.add_film("f", one_scene())
    with pytest.raises(KeyError, match="unknown film"):
        s.cancel_film("nope")
