"""Scheduler unit tests in the vLLM style: schedule -> fabricated reports -> update."""

from __future__ import annotations

import pytest

from farm.sched.config import SchedulerConfig
from farm.sched.output import (
    FilmState,
    FramesDecoded,
    PhaseFinished,
    SchedulerOutput,
    TaskReport,
    WorkerSpec,
)
from farm.sched.placement import Need, Round
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
    return [TaskReport(t.task_id, True) for t in tasks(out)
            if not task_ids or t.task_id in task_ids]


def step(s: Scheduler, now: float = 0.0,
         fail: set[str] = frozenset()) -> tuple[SchedulerOutput, list]:
    """Schedule, then report every started task (failing those whose id is in `fail`)."""
    out = s.schedule(now)
    reps = [TaskReport(t.task_id, t.task_id not in fail, "" if t.task_id not in fail else "boom")
            for t in tasks(out)]
    return out, s.update_from_output(reps)


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
    s.update_from_output(ok(out))


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
    s.update_from_output([TaskReport(high.task_id, True)])
    (low,) = s.schedule(2.0).phases
    assert (low.expert, low.start_step, low.stop_step, low.worker_ids) == (1, 26, 40, ("l",))
    assert low.members[0].input_key == high.members[0].output_key


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
    s.update_from_output([TaskReport(single.task_id, True)])
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
    s.update_from_output(ok(out))
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


def test_reservation_holds_a_generalist_against_other_experts_too():
    # Regression: the old scheduler blocked the gang's expert *name* for the round, so a
    # low-noise phase could take a worker holding both experts that the waiting
    # high-noise gang needed, again and again.
    h1 = WorkerState(WorkerSpec("h1", frozenset({"high"})), busy=1)
    g = WorkerState(WorkerSpec("g", frozenset({"high", "low"})))
    high, low = ("high", "t2v-a14b"), ("low", "t2v-a14b")
    rnd = Round([h1, g], {})
    assert rnd.place(high, frozenset(), 2) is None
    rnd.reserve(high, frozenset())
    assert rnd.place(low, frozenset(), 1) is None


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
    s.update_from_output(ok(out))
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
    s.update_from_output(ok(out2))
    s.update_from_output(ok(out))
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


def test_fifo_film_order_runs_a_tenants_films_in_admission_order_tenants_still_share():
    s = make_scheduler(("h", {"high"}), ("l", {"low"}), ("t", {"text"}, 50), ("v", {"vae"}, 9),
                       film_order="fifo")
    s.add_film("huge", many_scenes(12))
    run(s, 3)
    s.add_film("small", many_scenes(2))  # same tenant: waits for what the huge film leaves
    s.add_film("other", many_scenes(2), tenant="studio-b")  # another tenant: shares at once
    films = placements_of(s, 6)
    assert "small" not in films and films.count("other") == 2
    with pytest.raises(ValueError, match="film_order must be one of share, fifo, got 'lifo'"):
        SchedulerConfig(film_order="lifo")


def test_tenant_weights_split_slots_in_proportion():
    s = make_scheduler(("h", {"high"}, 3), ("l", {"low"}, 3), ("t", {"text"}, 50),
                       ("v", {"vae"}, 9), tenant_weights=(("gold", 2.0),))
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
    s = make_scheduler(("t", {"text"}), ("h", {"high"}), ("l1", {"low", "vae"}),
                       ("l2", {"low", "vae"}))
    s.add_film("f", one_scene())
    prepare(s)
    out, _ = step(s, 1.0)
    (low,) = s.schedule(2.0).phases
    s.update_from_output([TaskReport(low.task_id, True)])
    (dec,) = s.schedule(3.0).decodes
    assert dec.worker_id == low.worker_ids[0]


def test_balance_keeps_the_generalist_for_the_backlogged_pool():
    # "hl" holds both experts, "ht" high and the text encoder. With low-noise work backed
    # up, a high phase goes to "ht" and "hl" stays free for the low-noise pool; with a
    # prompt backlog instead, the other way round.
    hl = WorkerState(WorkerSpec("hl", frozenset({"high", "low"})))
    ht = WorkerState(WorkerSpec("ht", frozenset({"high", "text"})))
    high, low, text = Need("high", "tiny"), Need("low", "tiny"), Need("text", "tiny")
    rnd = Round([hl, ht], {high: 1, low: 1})
    assert rnd.place(high, frozenset(), 1) == ("ht",)
    assert rnd.place(low, frozenset(), 1) == ("hl",)
    rnd = Round([hl, ht], {high: 1, text: 3})
    assert rnd.place(high, frozenset(), 1) == ("hl",)


def test_warm_worker_beats_a_cold_one_holding_the_data():
    # "g" holds both experts and just ran this unit's high phase (its latents are there);
    # moving ~80 MB of latents to "l" is cheaper than swapping 28 GB of weights on "g".
    g = WorkerState(WorkerSpec("g", frozenset({"high", "low"})), warm=Need("high", "tiny"))
    lo = WorkerState(WorkerSpec("l", frozenset({"low"})))
    low = Need("low", "tiny")
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


# ---- scene inputs (ImageTask) --------------------------------------------------------


def test_chain_decodes_get_the_scene_inputs_which_live_until_the_last_phase():
    """A chain scene's encoded inputs (references, a character) are computed once and
    handed to every decode that builds the next clip's conditioning."""
    s = split_fleet()
    s.add_film("f", make_plan([scene("s1", 33, continuity="chain", window=3)], family="vace-a14b"))
    images, decodes, freed_at = [], [], {}
    for i in range(200):
        if not s.has_unfinished_films():
            break
        out, _ = step(s, float(i))
        images += [t.output_key for t in out.images]
        decodes += [(t.unit_id, t.scene_key) for t in out.decodes]
        for key in out.freed_keys:
            freed_at.setdefault(key, len(decodes))
    assert len(images) == 1  # encoded once for the scene's four clips
    (key,) = images
    assert decodes == [("s1/u0", key), ("s1/u1", key), ("s1/u2", key), ("s1/u3", None)]
    assert freed_at[key] >= 3  # kept for every decode that builds a next clip
