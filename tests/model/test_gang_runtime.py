"""Gangs in the in-process runtime: the scheduler sizes them, the inline executor runs
every rank in a thread with process groups met at a loopback store; the result equals
the run without gangs, and a rank that fails mid-phase fails its gang, which the
scheduler retries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.engine.core import EngineCore
from farm.engine.executor import InlineExecutor
from farm.model.gang import StoreServer
from farm.model.loader import resolve_model
from farm.model.worker import TorchWorker
from farm.sched.config import SchedulerConfig
from farm.sched.gangs import GangPolicy
from farm.sched.output import FilmState, Layout, PhaseFinished, TaskRetried, WorkerSpec
from farm.sched.scheduler import Scheduler
from farm.sched.speedup import SpeedupTable
from tests.helpers import make_plan, scene

pytestmark = pytest.mark.model
SIZE, STEPS = 32, 4
# The tiny transformer has 2 heads: Ulysses 1 or 2, times CFG 2.
POLICY = GangPolicy(tables=(SpeedupTable("t2v-a14b", SIZE, 2, ((1, 104.0), (2, 55.0)), 3.0, 1.0,
                                         1e6, 1e4),), min_efficiency=0.5)


class Recorder:
    """Checkpoints that keep every phase output in memory (the codec is the identity)."""

    def __init__(self):
        self.saved: dict[tuple[str, int], object] = {}

    def save_checkpoint(self, film_id, segment_id, phase_index, data):
        self.saved[(segment_id, phase_index)] = data

    def load_checkpoint(self, key):
        raise KeyError(key)

    def dumps(self, state):
        return state

    def loads(self, data):
        return data


class Frames:
    def __init__(self):
        self.frames: dict[tuple[str, int], np.ndarray] = {}

    def frame(self, film_id, scene_id, index, frame):
        self.frames[(scene_id, index)] = frame


def render(scenes: list[dict], workers: dict[str, TorchWorker], policy: GangPolicy | None, *,
           width: int = SIZE, height: int = SIZE, **config):
    rec, sink = Recorder(), Frames()
    executor = InlineExecutor(workers, sink, checkpoints=rec, codec=rec,
                              rendezvous=StoreServer() if policy else None, gang_timeout_s=60.0)
    engine = EngineCore(Scheduler(SchedulerConfig(gangs=policy, **config)), executor)
    for wid in workers:
        engine.add_worker(WorkerSpec(wid, frozenset({"high", "low", "text", "vae"})))
    events = engine.add_film("f", make_plan(scenes, steps=STEPS, width=width, height=height))
    engine.run(events.extend)
    assert engine.scheduler.progress("f").state == FilmState.SUCCEEDED
    return rec.saved, sink.frames, events


def fleet(n: int) -> dict[str, TorchWorker]:
    return {f"w{i}": TorchWorker(resolve_model("tiny")) for i in range(n)}


def count_gangs(monkeypatch) -> list[str]:
    """The name of every gang rank the workers form from now on (kept-open ones are not
    formed again)."""
    import farm.model.worker as worker

    formed: list[str] = []

    class Counted(worker.Gang):
        def __init__(self, rank, device, **kw):
            formed.append(rank.prefix)
            super().__init__(rank, device, **kw)
    monkeypatch.setattr(worker, "Gang", Counted)
    return formed


def compare(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].latents - b[k].latents).abs().max().item() for k in a)


@pytest.mark.parametrize("scenes", [
    [scene("s1", 9, seed=5)],                                              # one segment
    [scene("s1", 17, seed=6, continuity="windows", window=3, overlap=1)],  # two windows, lanes
], ids=["segment", "windows"])
def test_gangs_equal_the_run_without_gangs(scenes, monkeypatch):
    formed = count_gangs(monkeypatch)
    ref, ref_frames, _ = render(scenes, fleet(1), None)
    got, frames, events = render(scenes, fleet(4), POLICY)
    phases = [e for e in events if isinstance(e, PhaseFinished)]
    assert all(len(e.worker_ids) == 4 for e in phases)  # every phase ran on a gang of 4
    # the low-noise phase ran on the high-noise phase's gangs, kept open: formed once
    assert len(phases) == 2 * len(formed) // 4 and len({p.rsplit("/m", 1)[0] for p in formed}) == 1
    diff = compare(got, ref)
    print(f"{len(phases)} gang phases: max abs diff of the latents {diff:.3g}")
    assert diff <= 1e-5
    assert frames.keys() == ref_frames.keys()
    worst = max(np.abs(frames[k].astype(int) - ref_frames[k].astype(int)).max() for k in frames)
    assert worst <= 1  # 8-bit frames of latents within 1e-5


def test_a_rank_failing_mid_phase_fails_its_gang_and_the_retry_is_exact():
    scenes = [scene("s1", 9, seed=5)]
    ref, _, _ = render(scenes, fleet(1), None)
    workers = fleet(4)
    calls = {"n": 0}

    def boom(module, args, kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the second step of the first phase on this worker
            raise RuntimeError("injected fault")
    workers["w2"].loader.expert("high").register_forward_pre_hook(boom, with_kwargs=True)
    got, _, events = render(scenes, workers, POLICY, exclude_after=1)
    retried = [e for e in events if isinstance(e, TaskRetried)]
    assert [e.worker_id for e in retried] == ["w2"] and "injected fault" in retried[0].reason
    again = [e for e in events if isinstance(e, PhaseFinished) and e.phase_index == 0]
    assert len(again) == 1 and "w2" not in again[0].worker_ids  # excluded after the failure
    assert compare(got, ref) <= 1e-5


def test_gang_phases_name_their_layout():
    from farm.sched.output import PhaseTask

    s = Scheduler(SchedulerConfig(gangs=POLICY))
    for i in range(4):
        s.add_worker(WorkerSpec(f"w{i}", frozenset({"high", "low", "text", "vae"})))
    s.add_film("f", make_plan([scene("s1", 9)], steps=STEPS, width=SIZE, height=SIZE))
    from farm.sched.output import TaskReport

    out = s.schedule(0.0)
    s.update_from_output([TaskReport(t.task_id, True) for t in out.prepares])
    phase: PhaseTask = s.schedule(1.0).phases[0]
    assert phase.layout == Layout(2, 2)


def test_local_farm_forms_gangs_of_its_devices():
    import threading

    from farm.local import LocalFarm
    from farm.spec.film import resolve_film
    from farm.spec.profiles import T2V_A14B
    from farm.spec.storyboard import parse_storyboard

    board = {"title": "g", "fps": 16, "width": SIZE, "height": SIZE, "steps": STEPS,
             "scenes": [{"id": "s", "prompt": "a fox", "frames": 9, "seed": 5}]}
    film = resolve_film(parse_storyboard(board), T2V_A14B, model="tiny")
    frames = {}
    for devices, policy in (("cpu", None), ("cpu,cpu", POLICY)):
        farm = LocalFarm("tiny", workers="devices", device=devices,
                         config=SchedulerConfig(gangs=policy))
        _, stream = farm.submit(film)
        events: list = []
        t = threading.Thread(target=farm.run, args=(events.extend,))
        t.start()
        frames[devices] = np.stack([f.frame for f in stream])
        t.join()
        sizes = {len(e.worker_ids) for e in events if isinstance(e, PhaseFinished)}
        assert sizes == ({1} if policy is None else {2})
    assert np.abs(frames["cpu"].astype(int) - frames["cpu,cpu"].astype(int)).max() <= 1


def test_the_next_film_runs_on_the_open_shard_gang_and_equals_plain_workers(monkeypatch):
    """offload "shard" through the scheduler and the inline executor: two films one after
    the other on four workers; the second takes the first's gang, kept open with both
    experts' shards (formed once), and every latent equals the plain workers' bit for bit."""
    formed = count_gangs(monkeypatch)

    class ByFilm(Recorder):
        def save_checkpoint(self, film_id, segment_id, phase_index, data):
            self.saved[(film_id, segment_id, phase_index)] = data

    def two_films(offload: str) -> tuple[dict, int]:
        rec = ByFilm()
        workers = {f"w{i}": TorchWorker(resolve_model("tiny"), offload=offload)
                   for i in range(4)}
        executor = InlineExecutor(workers, Frames(), checkpoints=rec, codec=rec,
                                  rendezvous=StoreServer(), gang_timeout_s=60.0)
        engine = EngineCore(Scheduler(SchedulerConfig(gangs=POLICY)), executor)
        for wid in workers:
            engine.add_worker(WorkerSpec(wid, frozenset({"high", "low", "text", "vae"}),
                                         offload=offload))
        formed.clear()
        for film, seed in (("f", 5), ("g", 6)):
            engine.add_film(film, make_plan([scene("s1", 9, seed=seed)], steps=STEPS,
                                            width=SIZE, height=SIZE))
            engine.run(lambda events: None)
            assert engine.scheduler.progress(film).state == FilmState.SUCCEEDED
        return rec.saved, len({p.rsplit("/m", 1)[0] for p in formed})

    plain, plain_gangs = two_films("none")
    sharded, shard_gangs = two_films("shard")
    assert (plain_gangs, shard_gangs) == (2, 1)
    assert plain.keys() == sharded.keys() and {k[0] for k in plain} == {"f", "g"}
    assert all(torch.equal(plain[k].latents, sharded[k].latents) for k in plain)
