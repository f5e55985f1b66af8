"""The Ray runtime's director side of gangs inside a segment, without Ray: every rank of a
gang gets its own WorkItem (its GangRank, the rendezvous, rank 0 alone writes the
output, halos along lanes), and a rank failing because another did is not blamed."""

from __future__ import annotations

from farm.sched.config import SchedulerConfig
from farm.sched.gangs import GangPolicy
from farm.sched.output import Layout, TaskReport, WorkerSpec
from farm.sched.scheduler import Scheduler
from farm.sched.speedup import SpeedupTable
from serving.protocol import WorkReport
from serving.ray_executor import RayExecutor
from tests.helpers import make_plan, scene

POLICY = GangPolicy(tables=(SpeedupTable("t2v-a14b", 64, 4, ((1, 104.0), (4, 30.0), (8, 17.0)),
                                         3.0, 1.0, 1e6, 1e4),), min_efficiency=0.7)


class Store:
    def address(self) -> str:
        return "10.0.0.1:29500"


class Mailbox:
    def __init__(self, name: str, made: list):
        self.name, self.aborted = name, []
        made.append(self)
        self.abort = self

    def remote(self, reason: str) -> None:
        self.aborted.append(reason)


def gang_phase(scenes: list[dict], workers: int):
    """A RayExecutor, the phase task the scheduler hands out, and the items per worker."""
    s = Scheduler(SchedulerConfig(gangs=POLICY))
    made: list[Mailbox] = []
    ex = RayExecutor(sink=None, rendezvous=Store(), mailbox_factory=lambda n: Mailbox(n, made))
    for i in range(workers):
        spec = WorkerSpec(f"w{i}", frozenset({"high", "low", "text", "vae"}))
        s.add_worker(spec)
        ex.register(spec)
    plan = make_plan(scenes)
    s.add_film("f", plan)
    ex.add_film("f", plan)
    out = s.schedule(0.0)
    s.update_from_output([TaskReport(t.task_id, True) for t in out.prepares])
    task = s.schedule(1.0).phases[0]
    ex.submit(type(out)(phases=(task,)))
    items = {w: ex.take(w) for w in task.worker_ids}
    return ex, task, items, made


def test_every_rank_gets_its_own_item_and_rank_zero_writes_the_output():
    ex, task, items, made = gang_phase([scene("s1", 17)], 4)
    assert task.layout.size == 4 and all(len(v) == 1 for v in items.values())
    member = task.members[0]
    for r, wid in enumerate(member.ranks):
        item = items[wid][0]
        rank = item.orders[0].gang_rank
        assert (rank.rank, rank.size, rank.store) == (r, 4, "10.0.0.1:29500")
        assert rank.prefix == f"{task.task_id}/m0"
        assert item.output_keys == ((member.output_key,) if r == 0 else ())
        assert item.state_keys == (member.input_key,) and item.mailbox is None
    assert made == []  # one segment: no halos


def test_windows_of_gangs_swap_halos_along_lanes():
    _, task, items, made = gang_phase([scene("s1", 33, continuity="windows", window=5, overlap=2)],
                                      12)
    size = task.layout.size
    assert len(task.members) == 3 and size == 4
    assert sorted(m.name for m in made) == [f"halo:{task.task_id}:{r}" for r in range(size)]
    for m in task.members:
        for r, wid in enumerate(m.ranks):
            assert items[wid][0].mailbox == f"halo:{task.task_id}:{r}"


def test_a_failing_rank_is_blamed_not_its_echoes():
    ex, task, items, made = gang_phase([scene("s1", 17)], 4)
    ranks = task.members[0].ranks
    ex.report(WorkReport(ranks[1], task.task_id, False, "PeerFailed: closed by peer", echo=True))
    ex.report(WorkReport(ranks[3], task.task_id, False, "PeerFailed: closed by peer", echo=True))
    assert ex.poll() == []  # waiting for the rank they echo
    ex.report(WorkReport(ranks[2], task.task_id, False, "RuntimeError: CUDA error"))
    report, = ex.poll()
    assert (report.ok, report.worker_id, report.error) == (
        False, ranks[2], "RuntimeError: CUDA error")
    ex.report(WorkReport(ranks[0], task.task_id, False, "PeerFailed", echo=True))  # late: ignored
    assert ex.poll() == []


def test_only_echoes_blame_nobody():
    ex, task, items, _ = gang_phase([scene("s1", 17)], 2)
    assert task.layout == Layout(2, 1)
    for wid in task.members[0].ranks:
        ex.report(WorkReport(wid, task.task_id, False, "PeerFailed: link down", echo=True))
    report, = ex.poll()
    assert not report.ok and report.worker_id is None and "link down" in report.error


def test_a_band_decode_gets_an_item_per_rank_and_rank_zero_streams_and_writes():
    from farm.sched.output import DecodeSlice, DecodeTask, SchedulerOutput

    ex = RayExecutor(sink=None, rendezvous=Store())
    for i in range(3):
        ex.register(WorkerSpec(f"w{i}", frozenset({"high", "low", "text", "vae"})))
    plan = make_plan([scene("s1", 9)], width=512, height=32)
    ex.add_film("f", plan)
    seg = plan.scenes[0].units[0].segments[0]
    task = DecodeTask(task_id="f/u/decode/a1", film_id="f", scene_id="s1",
                      unit_id=plan.scenes[0].units[0].id, worker_id="w1",
                      slices=(DecodeSlice(seg.id, "k", 0, 3),), frame_start=0, frame_stop=9,
                      drop_frames=0, condition_key="cond", condition_frames=0, attempt=1,
                      bands=4, band_workers=("w2", "w0"))
    ex.submit(SchedulerOutput(decodes=(task,)))
    items = {w: ex.take(w) for w in ("w1", "w2", "w0")}
    ranks = [items[w][0].orders[0].band_rank for w in ("w1", "w2", "w0")]
    assert [(r.cfg, r.sp, r.rank) for r in ranks] == [(1, 3, 0), (1, 3, 1), (1, 3, 2)]
    assert ({r.prefix for r in ranks} == {"f/u/decode/a1/bands"}
            and ranks[0].store == "10.0.0.1:29500")
    assert all(items[w][0].orders[0].bands == 4 for w in items)
    assert [items[w][0].output_keys for w in ("w1", "w2", "w0")] == [("cond",), (), ()]
    # every rank reports; the task is done when the last does
    for w in ("w2", "w0", "w1"):
        ex.report(WorkReport(w, task.task_id, True, outputs={"cond": 1} if w == "w1" else {}))
    assert [r.ok for r in ex.poll(0)] == [True]
