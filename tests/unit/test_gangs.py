"""Gang size decisions (farm.sched.gangs, farm.sched.speedup) and the scheduler's gang
output: the rule by examples, the published table, and PhaseTask layouts."""

from __future__ import annotations

import pytest

from farm.sched.config import SchedulerConfig
from farm.sched.gangs import GangPolicy
from farm.sched.output import Layout, PhaseFinished, TaskReport, TaskRetried, WorkerSpec
from farm.sched.scheduler import Scheduler
from farm.sched.speedup import MEASURED_CFG_EFFICIENCY, SpeedupTable, published_tables
from tests.helpers import make_plan, scene

T2V = "t2v-a14b"
# The rule's examples on free CFG parallel (cfg_efficiency 1.0), where CFG halves pay;
# MEASURED: the default, on the measured efficiency (test_measured_cfg_...).
POLICY = GangPolicy(tables=published_tables(cfg_efficiency=1.0))
MEASURED = GangPolicy()
T720 = POLICY.table(T2V, 720)
# A table for the 64x64 test films: 4 heads, so Ulysses degrees 1, 2, 4.
TINY = SpeedupTable(T2V, 64, 4, ((1, 104.0), (4, 30.0), (8, 17.0)), fixed_s=3.0, swap_s=1.0,
                    a2a_bytes_at_8=1e6, pred_bytes=1e4)
TEST_POLICY = GangPolicy(tables=(TINY,), min_efficiency=0.7)


def test_published_points_give_the_phase_ratios():
    assert T720 is not None and T720.ratio(Layout(), 50e9) == 1.0
    one = 1041.5 - 16 - 6  # the single-GPU time less offload, text and decode
    assert T720.ratio(Layout(1, 4), 50e9) == pytest.approx((288.7 - 6) / one)
    assert T720.ratio(Layout(1, 8), 50e9) == pytest.approx((155.1 - 6) / one)
    # CFG parallel halves a step, plus one all-gather of a prediction per step
    cfg = T720.ratio(Layout(2, 4), 50e9)
    assert T720.ratio(Layout(1, 4), 50e9) / 2 < cfg < T720.ratio(Layout(1, 4), 50e9) / 2 * 1.001
    ratios = [T720.ratio(Layout(1, g), 50e9) for g in (1, 2, 4, 5, 8, 10, 20, 40)]
    assert ratios == sorted(ratios, reverse=True)
    # beyond one node, a slower link makes Ulysses slower
    assert T720.ratio(Layout(1, 20), 5e9) > T720.ratio(Layout(1, 20), 50e9)
    with pytest.raises(ValueError, match="must divide the 40 heads"):
        T720.clip_s(3, 50e9)


def test_many_segments_get_one_gpu_each():
    assert POLICY.choose(T2V, 720, 4.0, waiting=12, idle=8) == Layout()
    assert POLICY.choose(T2V, 720, 4.0, waiting=8, idle=8) == Layout()


def test_few_segments_and_idle_gpus_get_the_fastest_efficient_gang():
    # one segment, 8 idle GPUs: CFG 2 x Ulysses 4 beats Ulysses 8 (90 % vs 85 % efficient)
    assert POLICY.choose(T2V, 720, 4.0, waiting=1, idle=8) == Layout(2, 4)
    # a fair share of 5 GPUs: Ulysses 5 (4 + CFG would be slower)
    assert POLICY.choose(T2V, 720, 4.0, waiting=2, idle=11) == Layout(1, 5)
    # 64 idle GPUs: the efficiency floor (0.8) stops at 16 GPUs (CFG 2 x Ulysses 8)
    assert POLICY.choose(T2V, 720, 4.0, waiting=1, idle=64) == Layout(2, 8)
    # a lower floor allows wider, less efficient gangs
    wide = GangPolicy(min_efficiency=0.5).choose(T2V, 720, 4.0, waiting=1, idle=64)
    assert wide.size > 16


def test_waves_of_wide_gangs_beat_a_poor_equal_share():
    one = 1041.5 - 16 - 6  # the single-GPU time less offload, text and decode
    # Ulysses 5: fitted through 4 and 8 GPUs, 21.5 + 8 x (288.7 - 155.1) / 5 = 235.26 s
    ratio = {5: (235.26 - 6) / one, 8: (155.1 - 6) / one}
    # 12 windows segments (units of 2) on 64 GPUs: an equal share is 5 GPUs (Ulysses 5,
    # 4 GPUs idle); CFG 2 x Ulysses 8 in 3 waves of 4 segments finishes all 12 sooner
    assert 3 * ratio[8] / 2 < ratio[5]
    assert POLICY.choose(T2V, 720, 4.0, waiting=12, idle=64, members=2) == Layout(2, 8)
    # one wave is best when the share fits a good layout
    assert POLICY.choose(T2V, 720, 4.0, waiting=8, idle=64, members=2) == Layout(2, 4)
    # a unit's members all get the layout: never more GPUs than idle
    lay = POLICY.choose(T2V, 720, 4.0, waiting=2, idle=9, members=2)
    assert 2 * lay.size <= 9


def test_measured_cfg_efficiency_is_the_default_and_prefers_ulysses_within_a_node():
    t720 = MEASURED.table(T2V, 720)
    assert t720 is not None and t720.cfg_efficiency == MEASURED_CFG_EFFICIENCY < 1.0
    # CFG 2 x Ulysses 4 takes 1 / (2 x 0.775) of Ulysses 4's time: slower than Ulysses 8
    assert t720.ratio(Layout(2, 4), 50e9) > t720.ratio(Layout(1, 8), 50e9)
    assert MEASURED.choose(T2V, 720, 4.0, waiting=1, idle=8) == Layout(1, 8)
    # 16 GPUs: CFG 2 x Ulysses 8 wastes more than the 0.8 floor allows; with a lower
    # floor it beats Ulysses over the inter-node link
    assert MEASURED.choose(T2V, 720, 4.0, waiting=1, idle=16) == Layout(1, 8)
    wide = GangPolicy(min_efficiency=0.5).choose(T2V, 720, 4.0, waiting=1, idle=16)
    assert wide == Layout(2, 8)


def test_no_cfg_without_guidance_and_no_gang_without_a_table():
    assert POLICY.choose(T2V, 720, 1.0, waiting=1, idle=8) == Layout(1, 8)
    assert POLICY.choose(T2V, 1080, 4.0, waiting=1, idle=8) == Layout()
    assert POLICY.choose("ti2v-5b", 720, 4.0, waiting=1, idle=8) == Layout()
    assert GangPolicy(min_efficiency=1.0).choose(T2V, 720, 4.0, waiting=1, idle=8) == Layout()


def test_policy_options_are_fastest_first_and_efficient():
    opts = POLICY.options(T2V, 480, 4.0)
    assert opts[0][1] == min(r for _, r in opts) and (Layout(), 1.0) in opts
    assert all(1 / (r * lay.size) >= 0.8 for lay, r in opts)
    with pytest.raises(ValueError, match="min_efficiency"):
        GangPolicy(min_efficiency=0.0)
    assert len(published_tables()) == 4


def fleet(n: int, policy: GangPolicy | None = TEST_POLICY) -> Scheduler:
    s = Scheduler(SchedulerConfig(gangs=policy))
    for i in range(n):
        s.add_worker(WorkerSpec(f"w{i}", frozenset({"high", "low", "text", "vae"})))
    return s


def first_phase(s: Scheduler):
    out = s.schedule(0.0)
    s.update_from_output([TaskReport(t.task_id, True) for t in out.prepares])
    out = s.schedule(1.0)
    assert len(out.phases) >= 1
    return out


def test_a_lone_segment_on_an_idle_farm_runs_on_a_gang():
    s = fleet(4)
    s.add_film("f", make_plan([scene("s1", 17)]))
    p = first_phase(s).phases[0]
    assert p.layout.size == 4 and len(set(p.worker_ids)) == 4
    assert p.members[0].helpers == p.worker_ids[1:]
    assert all(w.busy == 1 for w in s.workers())  # every rank holds a slot
    # the output lives with rank 0: the next phase prefers it (locality)
    events = s.update_from_output([TaskReport(p.task_id, True)])
    assert [e.worker_ids for e in events if isinstance(e, PhaseFinished)] == [p.worker_ids]
    nxt = s.schedule(2.0).phases[0]
    assert nxt.members[0].worker_id == p.members[0].worker_id


def test_a_backlog_keeps_every_segment_on_its_own_worker():
    s = fleet(4)
    s.add_film("f", make_plan([scene(f"s{i}", 17) for i in range(6)]))
    out = first_phase(s)
    assert len(out.phases) == 4 and all(p.layout == Layout() for p in out.phases)


def test_windows_members_each_get_a_gang_on_distinct_workers():
    s = fleet(8)
    s.add_film("f", make_plan([scene("s1", 33, continuity="windows", window=5, overlap=2)]))
    p = first_phase(s).phases[0]
    members = len(p.members)
    assert members >= 2 and p.layout.size == 8 // members
    assert len(set(p.worker_ids)) == members * p.layout.size
    assert [len(m.ranks) for m in p.members] == [p.layout.size] * members


def test_without_a_policy_nothing_changes():
    s = fleet(4, policy=None)
    s.add_film("f", make_plan([scene("s1", 17)]))
    p = first_phase(s).phases[0]
    assert p.layout == Layout() and len(p.worker_ids) == 1


def test_a_lost_helper_fails_the_gang_and_the_phase_is_retried():
    s = fleet(4)
    s.add_film("f", make_plan([scene("s1", 17)]))
    p = first_phase(s).phases[0]
    helper = p.members[0].helpers[0]
    events = s.remove_worker(helper)
    assert any(isinstance(e, TaskRetried) for e in events)
    retry = s.schedule(2.0).phases[0]
    assert retry.attempt == 2 and helper not in retry.worker_ids
    assert retry.layout.size <= 3 and retry.members[0].input_key == p.members[0].input_key


def test_a_failing_rank_is_blamed_and_the_unit_retried():
    s = fleet(4)
    s.add_film("f", make_plan([scene("s1", 17)]))
    p = first_phase(s).phases[0]
    bad = p.members[0].helpers[-1]
    events = s.update_from_output([TaskReport(p.task_id, False, "boom", worker_id=bad)])
    assert [e.worker_id for e in events if isinstance(e, TaskRetried)] == [bad]
    assert s.schedule(2.0).phases[0].attempt == 2


def test_a_gang_waits_for_workers_busy_only_with_short_tasks():
    from farm.sched.gangs import place_phase
    from farm.sched.placement import Need, Round
    from farm.sched.state import WorkerState

    workers = [WorkerState(WorkerSpec(f"w{i}", frozenset({"high", "vae"}))) for i in range(4)]
    need = Need("high", "tiny")  # the films of make_plan are the model "tiny"
    workers[3].busy = 1  # decoding: seconds
    rnd = Round(workers, {need: 1}, soon=frozenset({"w3"}))
    assert place_phase(rnd, TEST_POLICY, need, frozenset(), (None,), family=T2V, height=64,
                       guidance=4.0) is None
    assert rnd.reserved == {"w0", "w1", "w2"}  # held for the gang; a decode may backfill
    workers[3].busy = 0
    ids, layout, _ = place_phase(Round(workers, {need: 1}), TEST_POLICY, need, frozenset(),
                                 (None,), family=T2V, height=64, guidance=4.0)
    assert layout.size == 4 and sorted(ids) == ["w0", "w1", "w2", "w3"]
    # a worker busy with a phase (minutes) is not waited for: the gang is narrower now
    workers[3].busy = 1
    ids, layout, _ = place_phase(Round(workers, {need: 1}), TEST_POLICY, need, frozenset(),
                                 (None,), family=T2V, height=64, guidance=4.0)
    assert layout.size == 2 and len(ids) == 2


def _to_decode(s: Scheduler, plan_scenes: list[dict], hold: str = "-", **film):
    """Run a film's phases until its first decode is handed out; phases of units whose id
    starts with `hold` keep running (never reported)."""
    s.add_film("f", make_plan(plan_scenes, **film))
    out, t, held = s.schedule(0.0), 0.0, []
    while not out.decodes:
        t += 1.0
        held += [p for p in out.phases if p.unit_id.startswith(hold)]
        s.update_from_output([TaskReport(x.task_id, True) for x in (*out.prepares, *out.phases)
                                   if not getattr(x, "unit_id", "").startswith(hold)])
        out = s.schedule(t)
    return out, held


def test_a_decode_spreads_its_bands_over_free_workers_only():
    s = fleet(6, policy=GangPolicy(tables=()))  # gangs on, no phase gangs
    d = _to_decode(s, [scene("s1", 9)], width=512, height=32)[0].decodes[0]  # 64 columns
    assert d.bands == 4 and len(d.band_workers) == 3  # ranks for the other bands
    assert len({d.worker_id, *d.band_workers}) == 4
    assert sum(w.busy for w in s.workers()) == 4
    # without gangs the executor may have no rendezvous: one worker decodes every band
    s = fleet(6, policy=None)
    d = _to_decode(s, [scene("s1", 9)], width=512, height=32)[0].decodes[0]
    assert d.bands == 4 and d.band_workers == ()


def test_a_decode_takes_no_worker_a_phase_holds():
    s = fleet(4, policy=GangPolicy(tables=()))
    out, held = _to_decode(s, [scene("s1", 9), scene("s2", 9)], hold="s2", width=512, height=32)
    d = out.decodes[0]
    busy = {w for p in held for w in p.worker_ids}
    assert len(busy) == 1 and not busy & {d.worker_id, *d.band_workers}
    assert len(d.band_workers) == 2  # the other free workers


def test_the_next_phase_reuses_the_gang_and_a_retry_forms_a_new_one():
    s = fleet(4)
    s.add_film("f", make_plan([scene("s1", 17)]))  # high-noise, then low-noise phase
    p0 = first_phase(s).phases[0]
    assert p0.layout.size == 4 and p0.forms_gang and p0.gang_key == p0.task_id
    s.update_from_output([TaskReport(p0.task_id, True)])
    p1 = s.schedule(2.0).phases[0]
    assert (p1.worker_ids, p1.layout, p1.gang_key) == (p0.worker_ids, p0.layout, p0.task_id)
    assert not p1.forms_gang
    # the reusing phase fails: its gangs are gone, the retry forms new ones
    s.update_from_output([TaskReport(p1.task_id, False, error="boom")])
    p1b = s.schedule(3.0).phases[0]
    assert p1b.phase_index == p1.phase_index and p1b.forms_gang and p1b.gang_key == p1b.task_id


def test_a_gang_is_reused_only_on_workers_that_last_ran_it():
    from farm.sched.placement import Round
    from farm.sched.state import WorkerState

    workers = [WorkerState(WorkerSpec(f"w{i}", frozenset({"high"})), gang="g1") for i in range(3)]
    need = ("high", T2V)
    assert Round(workers, {need: 1}).take(need, frozenset(), ("w0", "w1"), "g1")
    workers[1].gang = "g2"  # another gang ran on w1 since: its runtime closed g1's groups
    assert not Round(workers, {need: 1}).take(need, frozenset(), ("w0", "w1"), "g1")
    workers[1].gang, workers[0].busy = "g1", 1
    assert not Round(workers, {need: 1}).take(need, frozenset(), ("w0", "w1"), "g1")  # busy
    assert not Round(workers, {need: 1}).take(need, frozenset({"w2"}), ("w1", "w2"), "g1")
