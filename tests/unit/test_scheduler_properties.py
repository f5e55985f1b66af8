"""Property tests: random fleets, films, failures, worker losses, cancellations.

A fake executor keeps a key -> worker store, finishes running tasks in random order and
checks every SchedulerOutput against the invariants the executor relies on.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm.plan.film import FilmPlan
from farm.sched.config import SchedulerConfig
from farm.sched.gangs import GangPolicy
from farm.sched.output import (
    FilmState,
    FilmStateChanged,
    FramesDecoded,
    PhaseFinished,
    SchedulerOutput,
    TaskReport,
    WorkerSpec,
)
from farm.sched.scheduler import Scheduler
from farm.sched.speedup import SpeedupTable
from tests.helpers import make_plan, scene

EXPERTS = {"t2v-a14b": ("high", "low"), "ti2v-5b": ("dense",)}
# Gangs inside a segment for the 64x64 test films (4 heads: Ulysses 1, 2, 4; CFG 2).
GANGS = GangPolicy(tables=tuple(
    SpeedupTable(f, 64, 4, ((1, 104.0), (4, 30.0), (8, 17.0)), 3.0, 1.0, 1e6, 1e4)
    for f in EXPERTS),
    min_efficiency=0.6)


@st.composite
def film_plans(draw, family: str) -> FilmPlan:
    modes = ["single", "windows"] + (["chain"] if family == "ti2v-5b" else [])
    scenes = []
    for i in range(draw(st.integers(1, 3))):
        mode = draw(st.sampled_from(modes))
        frames = draw(st.sampled_from([5, 9, 17, 33, 41]))
        if mode == "single":
            scenes.append(scene(f"s{i}", frames))
        else:
            window = draw(st.integers(2, 5))
            kw = {"continuity": mode, "window": window}
            if mode == "windows":
                kw["overlap"] = draw(st.integers(1, window - 1))
            scenes.append(scene(f"s{i}", frames, **kw))
    return make_plan(scenes, family=family, steps=draw(st.integers(2, 8)))


@st.composite
def fleets(draw, family: str) -> list[WorkerSpec]:
    """Random holds; every need has at least one holder (so every film can finish)."""
    needs = [*EXPERTS[family], "text", "vae"]
    workers = []
    for i in range(draw(st.integers(1, 5))):
        holds = draw(st.sets(st.sampled_from(needs), min_size=1))
        workers.append(WorkerSpec(f"w{i}", frozenset(holds), draw(st.integers(1, 2))))
    for need in needs:
        if not any(need in w.holds for w in workers):
            w = draw(st.sampled_from(workers))
            workers[workers.index(w)] = WorkerSpec(w.worker_id, w.holds | {need}, w.slots)
    return workers


@dataclass
class FakeFarm:
    """An executor that checks what the scheduler hands out."""

    s: Scheduler
    plans: dict[str, FilmPlan]
    specs: dict[str, WorkerSpec]
    rng: random.Random
    store: dict[str, str] = field(default_factory=dict)  # key -> worker holding it
    running: dict[str, tuple[object, tuple[str, ...]]] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    events: list = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)
    down: dict[str, int] = field(default_factory=dict)  # worker -> rounds until back

    def dispatch(self, out: SchedulerOutput) -> None:
        for key in out.freed_keys:
            self.store.pop(key, None)
        self.stopped |= set(out.cancelled_task_ids) & set(self.running)
        for t in [*out.prepares, *out.images, *out.phases, *out.decodes]:
            assert t.task_id not in self.seen_ids, f"task id reused: {t.task_id}"
            self.seen_ids.add(t.task_id)
            self.check_inputs(t)
            workers = t.worker_ids if hasattr(t, "worker_ids") else (t.worker_id,)
            alive = {w.spec.worker_id for w in self.s.workers() if w.alive}
            assert set(workers) <= alive
            self.running[t.task_id] = (t, workers)
        self.check_phases(out)
        self.check_slots()

    def check_inputs(self, t) -> None:
        keys: list[str | None] = []
        if hasattr(t, "members"):
            keys = [t.prompt_key, t.condition_key, *(m.input_key for m in t.members)]
        elif hasattr(t, "slices"):
            keys = [s.key for s in t.slices]
        for key in keys:
            if key is not None:
                assert key in self.store, f"{t.task_id} reads {key}, which is not stored"

    def check_phases(self, out: SchedulerOutput) -> None:
        for p in out.phases:
            plan = self.plans[p.film_id]
            expert = plan.film.profile.experts[p.expert]
            assert all(expert in self.specs[w].holds for w in p.worker_ids)
            if p.layout.size > 1:  # gangs: every rank of every member on its own worker
                assert [len(m.ranks) for m in p.members] == [p.layout.size] * len(p.members)
                assert len(set(p.worker_ids)) == len(p.worker_ids)
            unit = plan.unit(p.unit_id)
            assert [m.segment_id for m in p.members] == [seg.id for seg in unit.segments]
            phase = plan.phases[p.phase_index]
            assert (p.start_step, p.stop_step) == (phase.start, phase.stop)

    def check_slots(self) -> None:
        load: dict[str, Counter] = defaultdict(Counter)
        for tid, (_, workers) in self.running.items():
            if tid in self.stopped:
                continue
            for w in workers:
                load[w][tid] += 1
        for w, per_task in load.items():
            if sum(per_task.values()) > self.specs[w].slots:  # only an oversubscribed gang
                assert len(per_task) == 1, f"{w} overbooked: {dict(per_task)}"

    def finish_some(self, fail_rate: float) -> list[TaskReport]:
        reports = []
        for tid in sorted(self.running):
            t, workers = self.running[tid]
            if tid not in self.stopped and self.rng.random() < 0.5:
                continue
            del self.running[tid]
            if tid in self.stopped or self.rng.random() < fail_rate:
                reports.append(TaskReport(tid, False, "boom", worker_id=self.rng.choice(workers)))
                continue
            for key, w in outputs(t):
                self.store[key] = w
            reports.append(TaskReport(tid, True))
        self.stopped &= set(self.running)
        return reports

    def lose_worker(self, data_lost: bool) -> None:
        alive = [w for w in self.specs if w not in self.down]
        if not alive:
            return
        wid = self.rng.choice(alive)
        self.down[wid] = self.rng.randint(1, 4)
        for tid in [t for t, (_, ws) in self.running.items() if wid in ws]:
            del self.running[tid]  # the executor will never report these
        if data_lost:
            for key in [k for k, w in self.store.items() if w == wid]:
                del self.store[key]
        self.events += self.s.remove_worker(wid, data_lost=data_lost)

    def revive(self) -> None:
        for wid in list(self.down):
            self.down[wid] -= 1
            if self.down[wid] <= 0:
                del self.down[wid]
                self.s.add_worker(self.specs[wid])


def outputs(t) -> list[tuple[str, str]]:
    if hasattr(t, "members"):
        return [(m.output_key, m.worker_id) for m in t.members]
    key = getattr(t, "output_key", None) or getattr(t, "condition_key", None)
    return [(key, t.worker_id)] if key else []


def drive(farm: FakeFarm, *, fail_rate: float, loss_rate: float, data_loss: bool,
          cancel_rate: float, max_rounds: int = 3000, max_losses: int = 8) -> None:
    """Random rounds until every film ended. Losses stop after `max_losses`: losing a
    worker with its data can roll a whole chain back, so endless losses could livelock."""
    out = SchedulerOutput()
    losses = 0
    for r in range(max_rounds):
        if not farm.s.has_unfinished_films() and not farm.running:
            break
        rng = farm.rng
        if losses < max_losses and rng.random() < loss_rate:
            losses += 1
            farm.lose_worker(data_lost=data_loss and rng.random() < 0.5)
        farm.revive()
        if rng.random() < cancel_rate:
            farm.events += farm.s.cancel_film(rng.choice(sorted(farm.plans)))
        if rng.random() < 0.05:
            fid = rng.choice(sorted(farm.plans))
            farm.events += farm.s.pause_film(fid) + farm.s.resume_film(fid)
        out = farm.s.schedule(float(r))
        farm.dispatch(out)
        farm.events += farm.s.update_from_output(farm.finish_some(fail_rate))
    else:
        raise AssertionError("films did not finish")
    farm.dispatch(farm.s.schedule(float(max_rounds)))  # flush the last freed keys


def check_outcome(farm: FakeFarm, strict_once: bool) -> None:
    s, events = farm.s, farm.events
    finals = [e for e in events if isinstance(e, FilmStateChanged) and e.state.is_final]
    assert Counter(e.film_id for e in finals) == Counter(list(farm.plans))  # each ends once
    assert not farm.store, f"keys never freed: {sorted(farm.store)[:5]}"
    assert all(w.busy == 0 for w in s.workers())
    for fid, plan in farm.plans.items():
        state = s.progress(fid).state
        check_frames(fid, plan, events, complete=state == FilmState.SUCCEEDED)
        done = [e for e in events if isinstance(e, PhaseFinished) and e.film_id == fid]
        for unit in plan.units:
            seq = [e.phase_index for e in done if e.unit_id == unit.id]
            if strict_once:  # no unit run twice to completion, steps conserved
                assert seq == list(range(len(seq)))
            else:  # rollbacks restart at phase 0
                assert all(b == a + 1 or b == 0 for a, b in zip(seq, seq[1:], strict=False))
            if state == FilmState.SUCCEEDED:
                assert seq[-len(plan.phases):] == list(range(len(plan.phases)))
        if state == FilmState.SUCCEEDED and strict_once:
            steps = sum(e.num_steps for e in done)
            assert steps == plan.phases[-1].stop * sum(len(u.segments) for u in plan.units)


def check_frames(fid: str, plan: FilmPlan, events: list, complete: bool) -> None:
    """FramesDecoded per scene: contiguous, increasing, from 0; all frames if complete."""
    for sp in plan.scenes:
        got = [(e.frame_start, e.frame_stop) for e in events
               if isinstance(e, FramesDecoded) and e.film_id == fid and e.scene_id == sp.scene.id]
        pos = 0
        for start, stop in got:
            assert start == pos and stop > start
            pos = stop
        if complete:
            assert pos == sp.scene.num_frames


SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def build(data, family: str, num_films: int, config: SchedulerConfig) -> FakeFarm:
    workers = data.draw(fleets(family))
    if data.draw(st.booleans()):
        config = replace(config, gangs=GANGS)
    s = Scheduler(config)
    for w in workers:
        s.add_worker(w)
    plans = {}
    for i in range(num_films):
        plans[f"f{i}"] = data.draw(film_plans(family))
        s.add_film(f"f{i}", plans[f"f{i}"], priority=data.draw(st.sampled_from([10, 50, 90])),
                   tenant=data.draw(st.sampled_from(["a", "b"])))
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    return FakeFarm(s, plans, {w.worker_id: w for w in workers}, rng)


FAMILIES = st.sampled_from(["t2v-a14b", "ti2v-5b"])


@SETTINGS
@given(st.data(), FAMILIES, st.integers(1, 3))
def test_fault_free_runs_every_unit_once_in_order(data, family, num_films):
    farm = build(data, family, num_films, SchedulerConfig())
    drive(farm, fail_rate=0.0, loss_rate=0.0, data_loss=False, cancel_rate=0.0)
    assert all(farm.s.progress(f).state == FilmState.SUCCEEDED for f in farm.plans)
    check_outcome(farm, strict_once=True)


@SETTINGS
@given(st.data(), FAMILIES, st.integers(1, 3))
def test_failures_losses_and_cancellations_never_lose_or_repeat_work(data, family, num_films):
    config = SchedulerConfig(max_attempts=data.draw(st.integers(1, 6)),
                             exclude_after=data.draw(st.integers(1, 4)))
    farm = build(data, family, num_films, config)
    drive(farm, fail_rate=data.draw(st.sampled_from([0.0, 0.05, 0.2])),
          loss_rate=data.draw(st.sampled_from([0.0, 0.05])), data_loss=False,
          cancel_rate=data.draw(st.sampled_from([0.0, 0.02])))
    check_outcome(farm, strict_once=True)


@SETTINGS
@given(st.data(), FAMILIES, st.integers(1, 3))
def test_data_loss_rolls_back_and_still_delivers_every_frame_once(data, family, num_films):
    config = SchedulerConfig(max_worker_losses=1000)  # losses must not end films
    farm = build(data, family, num_films, config)
    drive(farm, fail_rate=0.0, loss_rate=0.1, data_loss=True, cancel_rate=0.0)
    assert all(farm.s.progress(f).state == FilmState.SUCCEEDED for f in farm.plans)
    check_outcome(farm, strict_once=False)
