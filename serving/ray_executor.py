"""RayExecutor: the Executor of the cluster, living inside the director replica.

    engine thread ── submit(SchedulerOutput) ──> per-worker queues of WorkItems
                                                   ▲ next_work (long poll)   │
    pool replicas ── register / heartbeat / report ┘                          ▼
    engine thread <── poll() <── TaskReports (gang parts combined) <── reports

Data never passes through here: items carry Ray object refs. A worker owns the results
it puts; if it dies before they are consumed they are lost with it, and the scheduler
recomputes what depended on them (results are deterministic, so nothing changes).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from farm.engine.executor import Checkpoints, FleetChange, FrameSink
from farm.engine.gangrun import Rendezvous, band_orders, gang_orders
from farm.engine.orders import decode_order, denoise_orders, image_order, prompt_order
from farm.plan.film import FilmPlan
from farm.sched.output import (
    DecodeTask,
    FailureKind,
    PhaseTask,
    PrepareTask,
    SchedulerOutput,
    TaskReport,
    WorkerSpec,
)
from serving.protocol import WorkItem, WorkReport


class _Task:
    """A submitted task: which workers hold parts of it, which have reported."""

    def __init__(self, kind: str, expert: str, worker_ids: set[str], mailboxes: list[Any]):
        self.kind, self.expert = kind, expert
        self.waiting = set(worker_ids)
        self.mailboxes = mailboxes
        # A gang rank's failure that echoes another rank's (held until that one reports).
        self.echo: WorkReport | None = None
        self.duration = 0.0
        self.outputs: dict[str, Any] = {}
        self.homes: dict[str, str] = {}  # output key -> the worker that made it
        self.checkpoints: list[Any] = []
        self.output_bytes = 0
        self.notes: list[str] = []  # the parts' render-log notes (a gang's replicas)


class RayExecutor:
    def __init__(self, sink: FrameSink, *, liveness_timeout: float = 10.0,
                 mailbox_factory: Callable[[str], Any] | None = None,
                 notify: Callable[[str], None] | None = None,
                 checkpoints: Checkpoints | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rendezvous: Rendezvous | None = None, gang_timeout_s: float = 300.0):
        """`notify(worker_id)` is called (from the engine thread) when work is queued for a
        worker, so its pending long poll returns at once instead of polling.
        `rendezvous`: where the ranks of gangs inside a segment meet (default: a TCP store
        in this process on this node's address, created with the first gang)."""
        self.sink = sink
        self._rendezvous, self.gang_timeout_s = rendezvous, gang_timeout_s
        self._notify = notify or (lambda worker_id: None)
        # Where workers checkpoint phase outputs (the director cleans a finished film's).
        self.checkpoints = checkpoints
        self._saved: list[Any] = []
        self.liveness_timeout = liveness_timeout
        self.clock = clock
        self._mailbox_factory = mailbox_factory
        self._lock = threading.Lock()
        self._plans: dict[str, FilmPlan] = {}
        self.store: dict[str, Any] = {}  # key -> ObjectRef
        self._homes: dict[str, str] = {}  # key -> the worker that made (owns) it
        self._queues: dict[str, deque[WorkItem]] = {}
        self._seen: dict[str, float] = {}
        self._added: list[WorkerSpec] = []
        self._removed: list[str] = []
        # Leaving cleanly (drain, then leave): asked, told to the scheduler, and gone.
        self._draining: list[str] = []
        self._drain_told: set[str] = set()
        self._left: list[str] = []
        self._tasks: dict[str, _Task] = {}
        self._reports: queue.Queue[TaskReport] = queue.Queue()
        # worker id -> (kind, expert or "", task id) of every part it completed
        self.work_log: dict[str, list[tuple[str, str, str]]] = {}

    # ---- Executor (engine thread) -------------------------------------------------------

    def add_film(self, film_id: str, plan: FilmPlan) -> None:
        self._plans[film_id] = plan

    def fleet(self) -> FleetChange:
        now = self.clock()
        with self._lock:
            for wid, seen in list(self._seen.items()):
                if now - seen > self.liveness_timeout:
                    self._forget(wid, self._removed)
            change = FleetChange(tuple(self._added), tuple(self._removed),
                                 tuple(self._draining), tuple(self._left))
            self._drain_told.update(self._draining)
            self._added, self._removed, self._draining, self._left = [], [], [], []
        return change

    def submit(self, output: SchedulerOutput) -> None:
        with self._lock:
            for key in output.freed_keys:
                self.store.pop(key, None)
                self._homes.pop(key, None)
            for task_id in output.cancelled_task_ids:
                self._abort(task_id, "film finished")
            for task in (*output.decodes, *output.prepares, *output.images, *output.phases):
                self._enqueue(task)

    def poll(self, timeout: float | None = None) -> list[TaskReport]:
        out = []
        try:
            out.append(self._reports.get(timeout=timeout) if timeout
                       else self._reports.get_nowait())
            while True:
                out.append(self._reports.get_nowait())
        except queue.Empty:
            return out

    def take_checkpoints(self) -> list[Any]:
        """Checkpoints workers wrote for tasks that completed since the last call."""
        with self._lock:
            out, self._saved = self._saved, []
            return out

    def close(self) -> None:
        with self._lock:
            for task_id in list(self._tasks):
                self._abort(task_id, "director shutting down")
            self.store.clear()
            self._homes.clear()

    # ---- worker protocol (Serve request threads) ----------------------------------------

    def register(self, spec: WorkerSpec) -> None:
        with self._lock:
            self._queues[spec.worker_id] = deque()
            self._seen[spec.worker_id] = self.clock()
            self._added.append(spec)

    def live_workers(self, max_age_s: float) -> list[str]:
        """Workers heard from (heartbeat, poll) within `max_age_s`: a killed worker stays
        registered until the liveness timeout, but stops beating at once."""
        now = self.clock()
        with self._lock:
            return sorted(w for w, seen in self._seen.items() if now - seen <= max_age_s)

    def heartbeat(self, worker_id: str) -> bool:
        """False when the worker is unknown (lost earlier): it must register again."""
        with self._lock:
            if worker_id not in self._seen:
                return False
            self._seen[worker_id] = self.clock()
            return True

    def drain(self, worker_id: str) -> bool:
        """The worker is leaving (its replica is being stopped): from the next engine step
        on it gets no new work. True once nothing needs it: the scheduler knows, nothing
        is queued for it, it has reported every part it took, and every result it owns
        (Ray objects die with their owner) has been read and freed; then it calls leave."""
        with self._lock:
            if worker_id not in self._seen:
                return True
            if worker_id not in self._drain_told and worker_id not in self._draining:
                self._draining.append(worker_id)
            return (worker_id in self._drain_told and not self._queues[worker_id]
                    and not any(worker_id in t.waiting for t in self._tasks.values())
                    and worker_id not in self._homes.values())

    def leave(self, worker_id: str) -> None:
        """A drained worker goes; nothing it made is still needed."""
        with self._lock:
            if worker_id in self._seen:
                self._forget(worker_id, self._left)

    def take(self, worker_id: str) -> list[WorkItem] | None:
        """Everything queued for this worker; None if it must register again."""
        with self._lock:
            if worker_id not in self._seen:
                return None
            self._seen[worker_id] = self.clock()
            items = list(self._queues[worker_id])
            self._queues[worker_id].clear()
            return items

    def report(self, report: WorkReport) -> None:
        with self._lock:
            self._seen[report.worker_id] = self.clock() if report.worker_id in self._seen else 0.0
            task = self._tasks.get(report.task_id)
            if task is None or report.worker_id not in task.waiting:
                return  # already failed, cancelled, or the worker was declared lost
            self.work_log.setdefault(report.worker_id, []).append(
                (task.kind, task.expert, report.task_id))
            if not report.ok:
                if report.echo and self._hold_echo(task, report):
                    return
                first = task.echo if report.echo and task.echo is not None else report
                self._finish(report.task_id, TaskReport(report.task_id, False, first.error,
                                                        None if first.echo else report.worker_id,
                                                        first.lost_keys, first.duration,
                                                        failure=_failure(first)))
                return
            task.waiting.discard(report.worker_id)
            task.outputs.update(report.outputs)
            task.homes.update((key, report.worker_id) for key in report.outputs)
            task.checkpoints.extend(report.checkpoints)
            task.duration = max(task.duration, report.duration)
            task.output_bytes += report.output_bytes
            if report.note:
                task.notes.append(report.note)
            if not task.waiting:
                self.store.update(task.outputs)
                self._homes.update(task.homes)
                self._saved.extend(task.checkpoints)
                self._finish(report.task_id, TaskReport(report.task_id, True,
                                                        duration=task.duration,
                                                        output_bytes=task.output_bytes,
                                                        note="; ".join(task.notes)))

    def assignments(self) -> dict[str, list[str]]:
        """worker id -> tasks it holds a part of that it has not reported yet."""
        with self._lock:
            out: dict[str, list[str]] = {}
            for task_id, task in self._tasks.items():
                for wid in task.waiting:
                    out.setdefault(wid, []).append(task_id)
            return out

    def frame(self, film_id: str, scene_id: str, index: int, frame: Any) -> None:
        self.sink.frame(film_id, scene_id, index, frame)

    # ---- internals (lock held) -------------------------------------------------------

    def _forget(self, worker_id: str, into: list[str]) -> None:
        """`into`: the fleet change it goes out as (lost: removed; drained: left)."""
        self._seen.pop(worker_id, None)
        self._queues.pop(worker_id, None)
        self._drain_told.discard(worker_id)
        into.append(worker_id)
        for task_id, task in list(self._tasks.items()):
            if worker_id in task.waiting:
                # The scheduler fails this task when it removes the worker; stop its parts.
                self._abort(task_id, f"worker {worker_id} lost")

    def _hold_echo(self, task: _Task, r: WorkReport) -> bool:
        """A gang rank failed because another did: wait for that rank's own report (it
        is the one to blame) while any rank has not reported."""
        task.waiting.discard(r.worker_id)
        task.echo = task.echo or r
        return bool(task.waiting)

    def _finish(self, task_id: str, report: TaskReport) -> None:
        task = self._tasks.pop(task_id)
        if not report.ok:
            for mailbox in task.mailboxes:
                mailbox.abort.remote(report.error or "task failed")
        self._reports.put(report)

    def _abort(self, task_id: str, reason: str) -> None:
        task = self._tasks.pop(task_id, None)
        for mailbox in task.mailboxes if task is not None else ():
            mailbox.abort.remote(reason)

    def _gang_store(self) -> str:
        if self._rendezvous is None:
            import ray

            from farm.model.gang import StoreServer

            self._rendezvous = StoreServer(ray.util.get_node_ip_address(), self.gang_timeout_s)
        return self._rendezvous.address()

    def _enqueue(self, task: Any) -> None:
        items = self._items(task)
        names: dict[str, str] = {}
        if isinstance(task, PhaseTask) and self._mailbox_factory is not None:
            names = _mailbox_names(task, set(items))
        mailboxes = ([self._mailbox_factory(n) for n in dict.fromkeys(names.values())]
                     if names else [])
        kind = next(iter(items.values())).kind
        expert = ""
        if isinstance(task, PhaseTask):
            expert = self._plans[task.film_id].film.profile.experts[task.expert]
        self._tasks[task.task_id] = _Task(kind, expert, set(items), mailboxes)
        for wid, item in items.items():
            if wid not in self._queues:  # lost before it could take the work
                self._finish(task.task_id, TaskReport(task.task_id, False, f"worker {wid} lost",
                                                      wid, failure=FailureKind.WORKER_LOST))
                return
            if wid in names:
                item = _with_mailbox(item, names[wid])
            self._queues[wid].append(item)
            self._notify(wid)

    def _items(self, task: Any) -> dict[str, WorkItem]:
        plan = self._plans[task.film_id]
        if isinstance(task, PhaseTask) and task.layout.size > 1:
            return _gang_items(plan, task, self.store, self._gang_store(), self.gang_timeout_s)
        if isinstance(task, PhaseTask):
            return _phase_items(plan, task, self.store)
        if isinstance(task, DecodeTask):
            # the slices' latents, then (chain, scenes with inputs) the scene's inputs
            keys = tuple(slice_.key for slice_ in task.slices)
            keys += (task.scene_key,) if task.scene_key else ()
            order = decode_order(plan, task)
            outputs = (task.condition_key,) if task.condition_key else ()
            if not task.band_workers:
                return {task.worker_id: WorkItem(task.task_id, "decode", (order,), keys,
                                                 _refs(self.store, keys), outputs)}
            # A band-parallel decode: one item per rank; rank 0 streams and writes.
            ranked = band_orders(task, order, self._gang_store(), self.gang_timeout_s)
            members = zip((task.worker_id, *task.band_workers), ranked, strict=True)
            return {wid: WorkItem(task.task_id, "decode", (rank_order,), keys,
                                  _refs(self.store, keys), outputs if rank == 0 else ())
                    for rank, (wid, rank_order) in enumerate(members)}
        if isinstance(task, PrepareTask):
            kind, order = "prepare", prompt_order(plan, task)
        else:
            kind, order = "image", image_order(plan, task)
        return {task.worker_id: WorkItem(task.task_id, kind, (order,), (), {}, (task.output_key,))}


def _failure(r: WorkReport) -> FailureKind:
    """A worker's failure as a kind: the pool names it where it caught the exception
    (farm.engine.executor.failure_of), and lost inputs by key."""
    if r.lost_keys:
        return FailureKind.INPUT_LOST
    return r.failure or FailureKind.ERROR


def _refs(store: dict[str, Any], keys: tuple[str | None, ...]) -> dict[str, Any]:
    return {k: store[k] for k in keys if k is not None and k in store}


def _phase_items(plan: FilmPlan, task: PhaseTask, store: dict[str, Any]) -> dict[str, WorkItem]:
    orders = denoise_orders(plan, task)
    by_worker: dict[str, list[int]] = {}
    for i, m in enumerate(task.members):
        by_worker.setdefault(m.worker_id, []).append(i)
    items = {}
    for wid, idx in by_worker.items():
        states = tuple(task.members[i].input_key for i in idx)
        keys = (task.prompt_key, task.condition_key) + states
        items[wid] = WorkItem(task.task_id, "phase", tuple(orders[i] for i in idx), keys,
                              _refs(store, keys), tuple(task.members[i].output_key for i in idx),
                              state_keys=states, phase_index=task.phase_index)
    return items


def _gang_items(plan: FilmPlan, task: PhaseTask, store: dict[str, Any], address: str,
                timeout_s: float) -> dict[str, WorkItem]:
    """One item per rank (every rank on its own worker): the member's order with its
    GangRank; rank 0 writes the member's output, the other ranks compute and drop it."""
    ranked = gang_orders(task, denoise_orders(plan, task), address, timeout_s)
    items = {}
    for i, m in enumerate(task.members):
        keys = (task.prompt_key, task.condition_key, m.input_key)
        for r, wid in enumerate(m.ranks):
            items[wid] = WorkItem(task.task_id, "phase", (ranked[i][r],), keys, _refs(store, keys),
                                  (m.output_key,) if r == 0 else (), state_keys=(m.input_key,),
                                  phase_index=task.phase_index)
    return items


def _mailbox_names(task: PhaseTask, workers: set[str]) -> dict[str, str]:
    """Worker -> halo mailbox: one per task for windows spread over replicas, one per
    lane (rank r of every window) when the windows are gangs themselves."""
    if task.layout.size == 1:
        return {w: f"halo:{task.task_id}" for w in workers} if len(workers) > 1 else {}
    if len(task.members) == 1:
        return {}
    return {w: f"halo:{task.task_id}:{r}" for m in task.members for r, w in enumerate(m.ranks)}


def _with_mailbox(item: WorkItem, name: str) -> WorkItem:
    return WorkItem(item.task_id, item.kind, item.orders, item.input_keys, item.refs,
                    item.output_keys, name, item.state_keys, item.phase_index)
