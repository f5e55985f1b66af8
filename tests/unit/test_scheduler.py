"""Scheduler unit tests in the vLLM style: schedule -> fabricated reports -> update."""

from __future__ import annotations

import pytest

from farm.sched.config import SchedulerConfig
from farm.sched.output import (
    FilmState,
    FilmStateChanged,
    FramesDecoded,
    PhaseFinished,
    SchedulerOutput,
    TaskReport,
    TaskRetried,
    WorkerSpec,
)
from farm.sched.placement import Round
from farm.sched.scheduler import Scheduler
from farm.sched.state import WorkerState
from tests.helpers import make_plan, scene

ALL = {"high", "low", "text", "vae"}


def make_scheduler(*workers: tuple[str, set[str]] | tuple[str, set[str], int],
                   **config: object) -> Scheduler:
    s = Scheduler(SchedulerConfig(**config))  # type: ignore[arg-type]
    for w in workers:
        s.add_worker(WorkerSpec(w[0], frozenset(w[1]), w[2] if len(w) > 2 else 1))
    return s


def split_fleet(**config: object) -> Scheduler:
    """Expert parallel: one worker per expert, text and VAE on their own."""
    return make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text"}, 9), ("v", {"vae"}, 9),
                          **config)


def tasks(out: SchedulerOutput) -> list:
    return [*out.prepares, *out.images, *out.phases, *out.decodes]


def ok(out: SchedulerOutput, *task_ids: str) -> list[TaskReport]:
    return [TaskReport(t.task_id, True) for t in tasks(out) if not task_ids or t.task_id in task_ids]


def step(s: Scheduler, now: float = 0.0, fail: set[str] = frozenset()) -> tuple[SchedulerOutput, list]:
    """Schedule, then report every started task (failing those whose id is in `fail`)."""
    out = s.schedule(now)
    reps = [TaskReport(t.task_id, t.task_id not in fail, "" if t.task_id not in fail else "boom")
            for t in tasks(out)]
    return out, s.update_from_output(out, reps)


def run(s: Scheduler, max_rounds: int = 200) -> list:
    """Step (every task succeeds) until every film is finished or max_rounds."""
    events = []
    for i in range(max_rounds):
        if not s.has_unfinished_films():
            break
        events += step(s, float(i))[1]
    return events


def prepare(s: Scheduler) -> None:
    """Run the prompt encodings (and nothing else) of every film."""
    out = s.schedule(0.0)
    assert out.prepares and not out.phases
    s.update_from_output(out, ok(out))


def one_scene(frames: int = 17, **kw: object):
    return make_plan([scene("s1", frames, **kw)])


# ---- experts and phases ----------------------------------------------------------------


def test_segment_moves_to_low_noise_expert_at_boundary():
    s = split_fleet()
    plan = make_plan([scene("s1")], steps=40)
    s.add_film("f", plan)
    prepare(s)
    (high,) = s.schedule(1.0).phases
    assert (high.expert, high.start_step, high.stop_step, high.worker_ids) == (0, 0, 26, ("h",))
    s.update_from_output(SchedulerOutput(), [TaskReport(high.task_id, True)])
    (low,) = s.schedule(2.0).phases
    assert (low.expert, low.start_step, low.stop_step, low.worker_ids) == (1, 26, 40, ("l",))
    assert low.members[0].input_key == high.members[0].output_key


def test_family_qualified_holds_serve_only_that_family():
    s = make_scheduler(("h5", {"ti2v-5b/dense", "text", "vae"}), ("a", {"t2v-a14b/high"}),
                       ("b", {"t2v-a14b/low"}))
    s.add_film("t2v", one_scene())
    s.add_film("ti2v", make_plan([scene("s1")], family="ti2v-5b"))
    events = run(s)
    finished = [e for e in events if isinstance(e, PhaseFinished)]
    assert {(e.film_id, e.worker_ids) for e in finished} == {
        ("t2v", ("a",)), ("t2v", ("b",)), ("ti2v", ("h5",))}
    assert all(s.progress(f).state == FilmState.SUCCEEDED for f in ("t2v", "ti2v"))


def test_no_phase_goes_to_a_worker_without_its_expert():
    s = make_scheduler(("h", {"high", "text", "vae"}))
    s.add_film("f", one_scene())
    run(s, 20)
    assert s.progress("f").phases_done == 1  # low-noise phase waits for a low worker
    s.add_worker(WorkerSpec("l", frozenset({"low"})))
    out = s.schedule(30.0)
    assert [p.worker_ids for p in out.phases] == [("l",)]


# ---- gangs -------------------------------------------------------------------------------


def windows_plan(frames: int = 33, window: int = 5, overlap: int = 1, sid: str = "s1"):
    return make_plan([scene(sid, frames, continuity="windows", window=window, overlap=overlap)])


def test_gang_is_placed_all_or_nothing():
    s = make_scheduler(("t", {"text", "vae"}, 9), ("h1", {"high"}), ("h2", {"high"}),
                       ("h3", {"high"}), ("l", {"low"}))
    plan = make_plan([scene("s1", 41, continuity="windows", window=5, overlap=1)])
    assert len(plan.units[0].segments) == 3
    s.add_film("gang", plan)
    s.add_film("first", one_scene(), priority=60)
    prepare(s)
    (single,) = s.schedule(1.0).phases  # "first" ranks better and takes one high worker
    assert single.film_id == "first"
    assert s.schedule(2.0).phases == ()  # two free slots do not fit a gang of three
    s.update_from_output(SchedulerOutput(), [TaskReport(single.task_id, True)])
    (gang,) = [p for p in s.schedule(3.0).phases if p.film_id == "gang"]
    assert sorted(gang.worker_ids) == ["h1", "h2", "h3"]
    assert [m.segment_id for m in gang.members] == ["s1/0", "s1/1", "s1/2"]


def test_waiting_gang_reserves_slots_but_short_tasks_backfill():
    s = make_scheduler(("h1", {"high", "vae"}), ("h2", {"high"}), ("l", {"low"}), ("t", {"text"}))
    s.add_film("gang", windows_plan(), priority=60)
    s.add_film("small", one_scene(), priority=50)
    hog = make_plan([scene("s1")])
    s.add_film("hog", hog, priority=70)
    prepare(s)
    out = s.schedule(1.0)
    assert [(p.film_id, len(p.members)) for p in out.phases] == [("hog", 1)]
    # the gang (2 members) does not fit in the one free high slot; "small" must not take it
    assert s.schedule(2.0).phases == ()
    # the hog finishes its high phase: the gang starts before "small"
    s.update_from_output(out, ok(out))
    phases = s.schedule(3.0).phases
    assert {p.film_id for p in phases} >= {"gang"} and "small" not in {p.film_id for p in phases}


def test_reserved_slots_take_short_tasks_but_no_phases():
    h1 = WorkerState(WorkerSpec("h1", frozenset({"high", "vae"})))
    h2 = WorkerState(WorkerSpec("h2", frozenset({"high"}), slots=2))
    high, vae = ("high", "t2v-a14b"), ("vae", "t2v-a14b")
    h2.busy = 1
    rnd = Round([h1, h2], {})
    assert rnd.place(high, frozenset(), 3) is None  # a gang of 3 does not fit in 2 free slots
    rnd.reserve(high, frozenset())
    assert rnd.place(high, frozenset(), 1) is None  # a single phase may not jump the gang
    assert rnd.place(vae, frozenset(), 1, backfill=True) == ("h1",)  # a decode may


def test_oversubscribed_gang_fills_slots_before_doubling_up():
    h1 = WorkerState(WorkerSpec("h1", frozenset({"high"})))
    h2 = WorkerState(WorkerSpec("h2", frozenset({"high"}), slots=2))
    rnd = Round([h1, h2], {})
    assert sorted(rnd.place(("high", "t2v-a14b"), frozenset(), 4)) == ["h1", "h1", "h2", "h2"]


def test_oversubscribed_gang_waits_for_an_idle_pool_and_returns_its_slots():
    s = make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text", "vae"}, 9))
    plan = make_plan([scene("s1", 41, continuity="windows", window=5, overlap=1)])
    s.add_film("gang", plan)
    s.add_film("b", make_plan([scene("s1")]))
    prepare(s)
    out = s.schedule(1.0)
    (gang,) = [p for p in out.phases if p.film_id == "gang"]
    assert gang.worker_ids == ("h", "h", "h")  # three members share the only high worker
    assert [w.busy for w in s.workers() if w.spec.worker_id == "h"] == [3]
    assert s.schedule(2.0).phases == ()  # no other phase squeezes in while it runs
    s.update_from_output(out, ok(out))
    assert [w.busy for w in s.workers() if w.spec.worker_id == "h"] == [0]
    assert [p.film_id for p in s.schedule(3.0).phases if p.expert == 0] == ["b"]


# ---- policies ----------------------------------------------------------------------------


def test_higher_priority_film_takes_the_next_free_slot_without_killing_running_phases():
    s = split_fleet()
    s.add_film("low", make_plan([scene("a"), scene("b")]), priority=10)
    prepare(s)
    out = s.schedule(1.0)
    (running,) = out.phases
    s.add_film("urgent", one_scene(), priority=90)
    out2 = s.schedule(2.0)
    assert out2.cancelled_task_ids == () and [t.film_id for t in out2.prepares] == ["urgent"]
    s.update_from_output(out2, ok(out2))
    s.update_from_output(out, ok(out))
    out3 = s.schedule(3.0)
    # the freed high slot goes to the urgent film, not to the next scene of "low"
    assert sorted((p.film_id, p.expert) for p in out3.phases) == [("low", 1), ("urgent", 0)]


def placements_of(s: Scheduler, rounds: int) -> list[str]:
    films = []
    for i in range(rounds):
        out, _ = step(s, float(i))
        films += [p.film_id for p in out.phases if p.expert == 0]
    return films


def many_scenes(n: int):
    return make_plan([scene(f"s{i}") for i in range(n)])


def test_fair_share_interleaves_films_so_a_huge_film_cannot_starve_a_small_one():
    s = make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text"}, 20), ("v", {"vae"}, 4))
    s.add_film("huge", many_scenes(12))
    run(s, 3)  # the huge film is well under way
    s.add_film("small", many_scenes(2))
    films = placements_of(s, 8)
    assert films[:4].count("small") == 2  # the small film starts at once and shares evenly
    assert s.progress("small").state == FilmState.SUCCEEDED


def test_late_big_film_shares_instead_of_monopolising_until_it_catches_up():
    s = make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text"}, 20), ("v", {"vae"}, 4))
    s.add_film("first", many_scenes(40))
    run(s, 12)
    s.add_film("second", many_scenes(40))
    films = placements_of(s, 10)
    assert 3 <= films.count("first") <= 5  # roughly half, not zero


def test_tenant_weights_split_slots_in_proportion():
    s = make_scheduler(("h", {"high"}, 3), ("l", {"low"}, 3), ("t", {"text"}, 50), ("v", {"vae"}, 9),
                       tenant_weights=(("gold", 2.0),))
    s.add_film("g", many_scenes(30), tenant="gold")
    s.add_film("s", many_scenes(30), tenant="silver")
    films = placements_of(s, 12)
    assert films.count("g") == pytest.approx(2 * films.count("s"), abs=2)


def test_film_weight_within_a_tenant():
    s = make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text"}, 50), ("v", {"vae"}, 9))
    s.add_film("heavy", many_scenes(20), weight=3.0)
    s.add_film("light", many_scenes(20))
    films = placements_of(s, 16)
    assert films.count("heavy") == pytest.approx(3 * films.count("light"), abs=2)


def test_playback_order_earlier_scenes_first_and_decode_before_later_phases():
    # One worker holds the high-noise expert and the VAE: each round it takes the ready
    # task with the earliest frames, so scene a's decode goes before scene c's phase.
    s = make_scheduler(("hv", {"high", "vae"}), ("l", {"low"}), ("t", {"text"}, 9))
    s.add_film("f", make_plan([scene("a"), scene("b"), scene("c")]))
    rounds, frames = [], []
    for i in range(8):
        out, events = step(s, float(i))
        rounds.append(sorted((type(t).__name__[0], t.scene_id, getattr(t, "expert", None))
                             for t in tasks(out)))
        frames += [e.scene_id for e in events if isinstance(e, FramesDecoded)]
    assert rounds == [
        [("P", "a", None), ("P", "b", None), ("P", "c", None)],
        [("P", "a", 0)],
        [("P", "a", 1), ("P", "b", 0)],
        [("D", "a", None), ("P", "b", 1)],
        [("D", "b", None)],
        [("P", "c", 0)],
        [("P", "c", 1)],
        [("D", "c", None)],
    ]
    assert frames == ["a", "b", "c"] and s.progress("f").state == FilmState.SUCCEEDED


def test_locality_keeps_a_unit_on_the_worker_holding_its_latents():
    s = make_scheduler(("a", ALL), ("b", ALL), ("c", ALL))
    s.add_film("f", make_plan([scene("s1"), scene("s2"), scene("s3")]))
    events = run(s)
    where: dict[str, set] = {}
    for e in events:
        if isinstance(e, PhaseFinished):
            where.setdefault(e.unit_id, set()).update(e.worker_ids)
    assert all(len(ws) == 1 for ws in where.values())


def test_decode_prefers_the_worker_holding_the_final_latents():
    s = make_scheduler(("t", {"text"}), ("h", {"high"}), ("l1", {"low", "vae"}), ("l2", {"low", "vae"}))
    s.add_film("f", one_scene())
    prepare(s)
    out, _ = step(s, 1.0)
    (low,) = s.schedule(2.0).phases
    s.update_from_output(SchedulerOutput(), [TaskReport(low.task_id, True)])
    (dec,) = s.schedule(3.0).decodes
    assert dec.worker_id == low.worker_ids[0]


def test_balance_keeps_the_generalist_for_the_backlogged_pool():
    # "hl" holds both experts, "ht" high and the text encoder. With low-noise work backed
    # up, a high phase goes to "ht" and "hl" stays free for the low-noise pool; with a
    # prompt backlog instead, the other way round.
    hl = WorkerState(WorkerSpec("hl", frozenset({"high", "low"})))
    ht = WorkerState(WorkerSpec("ht", frozenset({"high", "text"})))
    high, low, text = ("high", "t2v-a14b"), ("low", "t2v-a14b"), ("text", "t2v-a14b")
    rnd = Round([hl, ht], {high: 1, low: 1})
    assert rnd.place(high, frozenset(), 1) == ("ht",)
    assert rnd.place(low, frozenset(), 1) == ("hl",)
    rnd = Round([hl, ht], {high: 1, text: 3})
    assert rnd.place(high, frozenset(), 1) == ("hl",)


def test_warm_worker_beats_a_cold_one_holding_the_data():
    # "g" holds both experts and just ran this unit's high phase (its latents are there);
    # moving ~80 MB of latents to "l" is cheaper than swapping 28 GB of weights on "g".
    g = WorkerState(WorkerSpec("g", frozenset({"high", "low"})), warm=("high", "t2v-a14b"))
    lo = WorkerState(WorkerSpec("l", frozenset({"low"})))
    low = ("low", "t2v-a14b")
    assert Round([g, lo], {}).place(low, frozenset(), 1, preferred=("g",)) == ("l",)
    g.warm = low  # once warm for the low expert, locality wins again
    assert Round([g, lo], {}).place(low, frozenset(), 1, preferred=("g",)) == ("g",)


def test_scheduler_remembers_which_expert_is_warm():
    s = make_scheduler(("g", {"high", "low", "text", "vae"}), ("l", {"low"}))
    s.add_film("f", make_plan([scene("a"), scene("b")]))
    events = run(s)
    phases = [(e.unit_id, e.phase_index, e.worker_ids) for e in events
              if isinstance(e, PhaseFinished)]
    # without the warm-weights rule, locality would keep each low phase on "g"
    assert sorted(phases) == [("a/u0", 0, ("g",)), ("a/u0", 1, ("l",)),
                              ("b/u0", 0, ("g",)), ("b/u0", 1, ("l",))]


def test_specialised_worker_is_preferred_over_a_generalist():
    s = make_scheduler(("all", ALL), ("h", {"high"}), ("l", {"low"}), ("t", {"text"}))
    s.add_film("f", one_scene())
    prepare(s)
    (high,) = s.schedule(1.0).phases
    assert high.worker_ids == ("h",)


# ---- failures ------------------------------------------------------------------------------


def test_failed_phase_reruns_from_the_last_completed_phase():
    s = split_fleet()
    s.add_film("f", one_scene())
    prepare(s)
    out, _ = step(s, 1.0)
    (high,) = out.phases
    out = s.schedule(2.0)
    (low,) = out.phases
    events = s.update_from_output(out, [TaskReport(low.task_id, False, "oom", worker_id="l")])
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
    s.update_from_output(out, [TaskReport(out.phases[0].task_id, False, "nan")])
    out = s.schedule(3.0)
    events = s.update_from_output(out, [TaskReport(out.phases[0].task_id, False, "nan")])
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
            s.update_from_output(out, [TaskReport(low.task_id, False, "xid 79", worker_id="bad")])
        else:
            s.update_from_output(out, [TaskReport(low.task_id, True)])
            break
    assert used.count("bad") == 2 and used[-1] == "good"
    assert s.progress("f").excluded_worker_ids == ("bad",)


def test_film_fails_when_every_holder_of_an_expert_is_excluded():
    s = split_fleet(exclude_after=1, max_attempts=9)
    s.add_film("f", make_plan([scene("a"), scene("b")]))
    prepare(s)
    out = s.schedule(1.0)
    s.update_from_output(out, [TaskReport(out.phases[0].task_id, False, "bad gpu", worker_id="h")])
    out = s.schedule(2.0)
    assert out.num_tasks == 0  # regression: no task of the failed film is handed out
    events = s.update_from_output(out, [])
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
    s.update_from_output(out, [TaskReport(prep.task_id, False, "boom", worker_id="t"),
                               TaskReport(high.task_id, True)])
    out = s.schedule(2.0)  # a's low phase is ready, but the film can no longer finish
    assert out.num_tasks == 0 and high.members[0].output_key in out.freed_keys
    assert s.update_from_output(out, [])[-1].state == FilmState.FAILED


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
    assert s.update_from_output(out, [TaskReport(p.task_id, True)]) == []  # late, ignored
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
    assert s.update_from_output(out2, [TaskReport(low.task_id, False, "lost input",
                                                  lost_keys=(high.members[0].output_key,))]) == []
    assert s.progress("f").excluded_worker_ids == ()
    events = s.update_from_output(out3, ok(out3)) + run(s)
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
    events = s.update_from_output(out, [TaskReport(low.task_id, False, "missing", lost_keys=(key,))])
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
    s.update_from_output(out, [TaskReport(u1.task_id, False, "lost", lost_keys=(cond,))])
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
    assert s.update_from_output(out2, [TaskReport(p.task_id, True)]) == []
    assert p.members[0].output_key in s.schedule(3.0).freed_keys
    assert s.workers()[0].busy == 0 and not s.has_unfinished_films()


def test_pause_finishes_running_phases_and_resume_continues():
    s = split_fleet()
    s.add_film("f", one_scene())
    prepare(s)
    out = s.schedule(1.0)
    s.pause_film("f")
    events = s.update_from_output(out, ok(out))
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
