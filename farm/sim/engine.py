"""The discrete-event simulator: drives the real Scheduler with the cost model.

    events (time, seq): film arrives | task done | worker fails | worker restarts
    at each time: apply events -> update_from_output(reports) -> schedule(now)
                  -> start tasks (duration = input transfers + compute) -> push "done"

Deterministic for a given workload, fleet and seed: events are ordered by (time, push
order), failures come from one seeded generator, and nothing iterates a set or hashes.

Data locality is modelled: the simulator remembers which worker holds every key (the
executor's store); a task reading a key held elsewhere pays latency + bytes / bandwidth.
A failed worker loses its running tasks and its data (`remove_worker(data_lost=True)`)
and comes back empty after `restart_s`.

Streaming: the decoder emits frames as each latent frame is decoded, so a film's first
frame is out one latent frame after its first decode starts (plus the input transfer).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from farm.plan.film import FilmPlan
from farm.sched.config import SchedulerConfig
from farm.sched.output import (
    DecodeTask,
    Event,
    FailureKind,
    FilmStateChanged,
    ImageTask,
    Layout,
    PhaseTask,
    PrepareTask,
    SchedulerOutput,
    TaskReport,
    WorkerSpec,
    model_part,
)
from farm.sched.scheduler import Scheduler
from farm.sim.costs import CostModel
from farm.sim.result import FilmResult, SimResult
from farm.sim.workload import Workload

Task = PrepareTask | ImageTask | PhaseTask | DecodeTask


@dataclass(frozen=True, slots=True)
class SimWorker:
    spec: WorkerSpec
    # Label for utilisation per pool, e.g. "t2v-a14b/high".
    pool: str
    # A worker holding several experts keeps one resident and pays this to switch.
    swap_s: float = 0.0


@dataclass
class _Active:
    task: Task
    start: float
    end: float
    workers: tuple[str, ...]
    compute_s: float
    # (key, worker, bytes) this task writes when it succeeds
    writes: list[tuple[str, str, int]] = field(default_factory=list)


class Simulation:
    def __init__(self, workload: Workload, fleet: Sequence[SimWorker], costs: CostModel, *,
                 failures_per_gpu_hour: float = 0.0, restart_s: float = 120.0, seed: int = 0,
                 config: SchedulerConfig | None = None):
        self.workload, self.costs, self.restart_s = workload, costs, restart_s
        self.fleet = {w.spec.worker_id: w for w in fleet}
        # Nodes of costs.node_gpus GPUs, in fleet order (a deployment's replicas of one
        # pool fill nodes in turn): a Ulysses group spread over nodes pays ib rates.
        self.node = {w.spec.worker_id: i // costs.node_gpus for i, w in enumerate(fleet)}
        self.fail_rate = failures_per_gpu_hour / 3600.0
        self.rng = random.Random(seed)
        self.s = Scheduler(config)
        self.plans: dict[str, FilmPlan] = {a.film_id: a.plan for a in workload.arrivals}
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self.active: dict[str, _Active] = {}
        self.store: dict[str, tuple[str, int]] = {}  # key -> (worker, bytes)
        self.busy: dict[str, float] = {wid: 0.0 for wid in self.fleet}
        # worker -> experts in GPU memory (workers that hold several; absent: just started)
        self.resident: dict[str, frozenset[str]] = {}
        # worker -> (gang, model) whose experts' shards it keeps (offload "shard")
        self.shards: dict[str, tuple[str, str]] = {}
        self.phase_gpu_s = 0.0
        self.first_frame: dict[str, float] = {}
        self.ended: dict[str, tuple[float, str]] = {}  # film -> (time, final state)
        self.events: list[Event] = []
        self.num_failures = 0
        self.phases = self.switched_phases = self.adapter_loads = 0

    # ---- the loop ------------------------------------------------------------------------

    def run(self) -> SimResult:
        for i, a in enumerate(self.workload.arrivals):
            self._push(a.time, "arrive", str(i))
        for wid in self.fleet:
            self.s.add_worker(self.fleet[wid].spec)
            self._arm_failure(wid, 0.0)
        while self._heap and len(self.ended) < len(self.plans):
            now = self._heap[0][0]
            reports: list[TaskReport] = []
            while self._heap and self._heap[0][0] <= now:
                _, _, kind, arg = heapq.heappop(self._heap)
                reports += self._handle(now, kind, arg)
            self._note(self.s.update_from_output(reports), now)
            self._schedule(now)
        return self._result()

    def _push(self, time: float, kind: str, arg: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, self._seq, kind, arg))

    def _handle(self, now: float, kind: str, arg: str) -> list[TaskReport]:
        if kind == "arrive":
            a = self.workload.arrivals[int(arg)]
            self._note(self.s.add_film(a.film_id, a.plan, priority=a.priority, tenant=a.tenant),
                       now)
        elif kind == "done" and arg in self.active:
            return [self._complete(now, arg)]
        elif kind == "fail" and self._alive(arg):
            self._fail(now, arg)
        elif kind == "restart":
            self.s.add_worker(self.fleet[arg].spec)
            self._arm_failure(arg, now)
        return []

    def _schedule(self, now: float) -> SchedulerOutput:
        """schedule(); stop the tasks it cancels at once and schedule again."""
        while True:
            out = self.s.schedule(now)
            for key in out.freed_keys:
                self.store.pop(key, None)
            for task in (*out.prepares, *out.images, *out.phases, *out.decodes):
                self._start(now, task)
            stopped = [self._abort(now, tid) for tid in out.cancelled_task_ids
                       if tid in self.active]
            if not stopped:
                return out
            self._note(self.s.update_from_output([
                TaskReport(tid, ok=False, error="cancelled", failure=FailureKind.CANCELLED)
                for tid in stopped]), now)

    def _note(self, events: list[Event], now: float) -> None:
        """Keep events; note when films end (event times are those of the last
        schedule() call, so the simulator's clock is used instead)."""
        self.events += events
        for e in events:
            if isinstance(e, FilmStateChanged) and e.state.is_final:
                self.ended[e.film_id] = (now, e.state.value)

    # ---- tasks ---------------------------------------------------------------------------

    def _start(self, now: float, task: Task) -> None:
        if isinstance(task, PhaseTask):
            duration, compute, writes = self._phase(task)
        elif isinstance(task, DecodeTask):
            duration, compute, writes = self._decode(now, task)
        else:
            compute = (self.costs.text() if isinstance(task, PrepareTask)
                       else self.costs.image(self.plans[task.film_id]))
            size = (self.costs.prompt_bytes() if isinstance(task, PrepareTask)
                    else self._condition_bytes(task.film_id, task.scene_id, 0))
            duration, writes = compute, [(task.output_key, task.worker_id, size)]
        workers = (task.worker_ids if isinstance(task, PhaseTask) else
                   (task.worker_id, *task.band_workers) if isinstance(task, DecodeTask)
                   else (task.worker_id,))
        self.active[task.task_id] = _Active(task, now, now + duration, workers, compute, writes)
        self._push(now + duration, "done", task.task_id)

    def _phase(self, task: PhaseTask) -> tuple[float, float, list]:
        plan = self.plans[task.film_id]
        unit = plan.unit(task.unit_id)
        # A gang (cfg x sp per member) runs the phase in `gang_ratio` of the one-GPU time.
        compute = self.costs.gang_phase_s(plan, unit, task.phase_index, task.layout,
                                          forms=task.forms_gang,
                                          straddles=self._straddles(task))
        per_worker = max(task.worker_ids.count(w) for w in task.worker_ids)  # oversubscribed
        compute = compute * per_worker + self.costs.exchange_s(plan, unit, task.phase_index)
        expert = plan.film.profile.experts[task.expert]
        transfers: list[float] = []
        switches: list[float] = []
        writes = []
        for m, seg in zip(task.members, unit.segments, strict=True):
            keys = [m.input_key, task.prompt_key, task.condition_key]
            for wid in m.ranks:  # every rank reads the inputs and holds the expert
                switches.append(self._swap_s(wid, plan, model_part(plan.film.model, expert),
                                             task.layout, task.gang_key))
                transfers.append(sum(self._fetch_s(k, wid) for k in keys if k) + switches[-1])
            writes.append((m.output_key, m.worker_id,
                           self.costs.handoff_bytes(plan, seg.window.size)))
        self.phases += 1
        self.switched_phases += any(t > 0 for t in switches)
        self.adapter_loads += task.adapter_loads
        # every worker loads its adapters while the others load theirs
        load_s = self.costs.adapter_load_s(task.adapter_load_bytes)
        steps = task.stop_step - task.start_step
        self.phase_gpu_s += self.costs.phase_calls_factor(plan, unit.scene_id, task.phase_index) \
            * sum(steps * self.costs.step_s(plan, seg.window.size, expert)
                  for seg in unit.segments)
        return max(transfers) + load_s + compute, compute, writes

    def _straddles(self, task: PhaseTask) -> bool:
        """Whether a Ulysses group of the task (cfg_rank's sp ranks) spans nodes."""
        sp = task.layout.sp
        return sp > 1 and any(len({self.node[w] for w in m.ranks[c * sp:(c + 1) * sp]}) > 1
                              for m in task.members for c in range(task.layout.cfg))

    def _decode(self, now: float, task: DecodeTask) -> tuple[float, float, list]:
        plan = self.plans[task.film_id]
        ranks = (task.worker_id, *task.band_workers)
        # every rank reads every slice; the bands are shared out between the ranks
        fetch = [[self._fetch_s(sl.key, wid, self.costs.latent_bytes(
            plan, sl.latent_stop - sl.latent_start)) for sl in task.slices] for wid in ranks]
        latents = sum(sl.latent_stop - sl.latent_start for sl in task.slices)
        per_latent = self.costs.band_decode_per_latent(plan, task.bands, len(ranks))
        compute = per_latent * latents
        if task.frame_start == 0 and plan.scene_plan(task.scene_id).scene.index == 0:
            first = now + max(f[0] for f in fetch) + per_latent
            self.first_frame[task.film_id] = min(first, self.first_frame.get(task.film_id, first))
        writes = []
        if task.condition_key:
            size = self._condition_bytes(task.film_id, task.scene_id, 1)
            writes.append((task.condition_key, task.worker_id, size))
        return max(sum(f) for f in fetch) + compute, compute, writes

    def _swap_s(self, worker: str, plan: FilmPlan, expert: str, layout: Layout,
                gang: str = "") -> float:
        """Loading the phase's expert on a worker that holds several. A worker keeps every
        expert of the phase's model resident while they fit in memory beside this rank's
        activations (costs.experts_fit; at start-up it loads them all), else only the one
        it runs: then switching costs its `swap_s`. Experts of other models never stay
        beside them (they were counted in no fit), so a generalist that changes model
        pays for what it loads. Under offload "shard" a rank of gang `gang` holds 1/n of
        every expert of the model with the gang (when those fit): loading them costs
        experts / n of a switch once per gang, nothing while the gang stays open."""
        cost = self.fleet[worker].swap_s
        if not cost:
            return 0.0
        model = expert.rsplit("/", 1)[0] + "/"
        every = frozenset(h for h in self.fleet[worker].spec.holds if h.startswith(model))
        before = self.resident.get(worker)
        held = self.shards.pop(worker, None)
        if (layout.size > 1 and self.fleet[worker].spec.offload == "shard"
                and self.costs.experts_fit(plan, layout, len(every), over=layout.size)):
            self.shards[worker], self.resident[worker] = (gang, model), frozenset()
            fresh = before is None
            return 0.0 if fresh or held == (gang, model) else cost * len(every) / layout.size
        keep = self.costs.experts_fit(plan, layout, len(every))
        # Only this model's experts that were already loaded (or all of them at start-up)
        # stay: loading the rest would be another switch.
        kept = (every if before is None else before & every) if keep else frozenset()
        self.resident[worker] = kept | {expert}
        return 0.0 if before is None or expert in before else cost

    def _condition_bytes(self, film_id: str, scene_id: str, unit_index: int) -> int:
        plan = self.plans[film_id]
        units = plan.scene_plan(scene_id).units
        unit = units[min(unit_index, len(units) - 1)]
        return self.costs.condition_bytes(plan, unit.segments[0].window.size)

    def _fetch_s(self, key: str, worker: str, num_bytes: int | None = None) -> float:
        home, size = self.store.get(key, (worker, 0))
        return 0.0 if home == worker else self.costs.transfer_s(
            size if num_bytes is None else num_bytes)

    def _complete(self, now: float, task_id: str) -> TaskReport:
        run = self.active.pop(task_id)
        self._charge(run, now)
        for key, wid, size in run.writes:
            self.store[key] = (wid, size)
        return TaskReport(task_id, ok=True, duration=run.compute_s)

    def _abort(self, now: float, task_id: str) -> str:
        self._charge(self.active.pop(task_id), now)
        return task_id

    def _charge(self, run: _Active, now: float) -> None:
        for wid in dict.fromkeys(run.workers):
            self.busy[wid] += now - run.start

    # ---- failures ------------------------------------------------------------------------

    def _alive(self, worker_id: str) -> bool:
        return any(w.alive for w in self.s.workers() if w.spec.worker_id == worker_id)

    def _arm_failure(self, worker_id: str, now: float) -> None:
        if self.fail_rate > 0:
            self._push(now + self.rng.expovariate(self.fail_rate), "fail", worker_id)

    def _fail(self, now: float, worker_id: str) -> None:
        self.num_failures += 1
        for tid in [t for t, run in self.active.items() if worker_id in run.workers]:
            self._abort(now, tid)
        for key in [k for k, (home, _) in self.store.items() if home == worker_id]:
            del self.store[key]
        self.resident.pop(worker_id, None)
        self.shards.pop(worker_id, None)
        self._note(self.s.remove_worker(worker_id, data_lost=True), now)
        self._push(now + self.restart_s, "restart", worker_id)

    # ---- result --------------------------------------------------------------------------

    def _result(self) -> SimResult:
        films = []
        for a in self.workload.arrivals:
            done, state = self.ended.get(a.film_id, (None, "UNFINISHED"))
            films.append(FilmResult(a.film_id, a.time, self.first_frame.get(a.film_id),
                                    done, state))
        pools: dict[str, int] = {}
        busy: dict[str, float] = {}
        for wid, w in self.fleet.items():
            pools[w.pool] = pools.get(w.pool, 0) + 1
            busy[w.pool] = busy.get(w.pool, 0.0) + self.busy[wid]
        return SimResult(tuple(films), pools, busy, self.phase_gpu_s, self.num_failures,
                         switched_phases=self.switched_phases, phases=self.phases,
                         adapter_loads=self.adapter_loads)
