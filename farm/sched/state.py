"""Mutable bookkeeping behind the scheduler: films, scenes, units, workers, running tasks,
and the Ledger that holds them.

Only the scheduler touches these (it lends its Ledger to farm.sched.tasks and
farm.sched.reports); everything it hands out is a frozen value from `farm.sched.output`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from farm.plan.film import FilmPlan, Unit
from farm.sched.adapters import AdapterMirror
from farm.sched.output import FilmState, Layout, TaskKind, WorkerSpec, model_part


@dataclass
class Tries:
    """Counters of one task slot: a phase of a unit, its decode, a prompt encoding."""

    # Tries handed out: names every try (a<started>), so no id or key is ever reused,
    # not even when a rolled-back unit runs the phase again.
    started: int = 0
    # Errors reported: the max_attempts budget.
    failed: int = 0
    # Tries that died with their worker: the max_worker_losses budget.
    lost: int = 0


@dataclass(frozen=True, slots=True)
class GangMemo:
    """A unit's gangs: their name, every rank (members in order) and their layout."""

    key: str
    worker_ids: tuple[str, ...]
    layout: Layout


@dataclass
class UnitState:
    plan: Unit
    # Phases completed; the unit's next phase is plan.phases[phases_done].
    phases_done: int = 0
    # segment id -> key of the latest completed phase output, and where it lives.
    latest: dict[str, str] = field(default_factory=dict)
    location: dict[str, str] = field(default_factory=dict)
    # Task id of the running phase or decode, if any.
    running: str | None = None
    decoded: bool = False
    # Chain mode: key of the conditioning this unit's decode made for the next unit.
    condition_key: str | None = None
    # (kind, phase index) -> counters: (PHASE, 0), (PHASE, 1), (DECODE, 0).
    tries: dict[tuple[TaskKind, int], Tries] = field(default_factory=dict)
    # Bumped when the unit rolls back to initial noise (its data was lost). Reports of
    # tasks started in an older epoch are stale: their results and failures are ignored.
    epoch: int = 0
    # The gangs of its last phase, when that phase succeeded on a layout > 1 x 1.
    gang: GangMemo | None = None

    def slot(self, kind: TaskKind, phase: int = 0) -> Tries:
        return self.tries.setdefault((kind, phase), Tries())


@dataclass
class SceneState:
    scene_id: str
    index: int
    units: list[UnitState]
    prompt_key: str | None = None
    prompt_running: str | None = None
    # Scenes with a first-frame image: its encoded conditioning for the first unit.
    has_image: bool = False
    image_key: str | None = None
    image_running: str | None = None
    frames_done: int = 0
    # PREPARE (the prompt) / IMAGE -> counters
    tries: dict[TaskKind, Tries] = field(default_factory=dict)

    def slot(self, kind: TaskKind) -> Tries:
        return self.tries.setdefault(kind, Tries())


@dataclass
class FilmRecord:
    film_id: str
    plan: FilmPlan
    tenant: str
    priority: int
    weight: float
    # Admission order, the last tie-break (first come, first served).
    seq: int
    scenes: list[SceneState]
    state: FilmState = FilmState.QUEUED
    reason: str = ""
    # Virtual time for fair share: work handed out (segment-steps x tokens) / weight,
    # lifted on (re)activation to the least-served active film of its tenant.
    vtime: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    excluded: set[str] = field(default_factory=set)
    # The error of the latest failed task: part of the reason if the film fails later.
    last_error: str = ""
    phases_done: int = 0
    # Whether any task was handed out (RUNNING rather than QUEUED on resume).
    started: bool = False

    @property
    def model(self) -> str:
        """The film's model as served: the namespace of what its tasks need (Need.model)."""
        return self.plan.film.model

    @property
    def phases_total(self) -> int:
        return sum(len(u.units) for u in self.scenes) * len(self.plan.phases)

    @property
    def frames_total(self) -> int:
        return self.plan.film.num_frames

    @property
    def frames_done(self) -> int:
        return sum(s.frames_done for s in self.scenes)

    @property
    def schedulable(self) -> bool:
        return self.state in (FilmState.QUEUED, FilmState.RUNNING)


@dataclass
class WorkerState:
    spec: WorkerSpec
    # Members of running tasks on this worker (an oversubscribed gang counts each one).
    busy: int = 0
    alive: bool = True
    # (expert, model) of the last phase placed here (a placement.Need): the expert whose
    # weights are in GPU memory on a worker that holds several (placement avoids swaps).
    # SHARDS after a gang phase under offload "shard": no whole expert is in memory.
    warm: tuple[str, str] | None = None
    # Name of the last gang a phase started here (the one its runtime keeps open).
    gang: str | None = None
    # Leaving cleanly (its replica is being stopped): it finishes what it runs and gets
    # nothing new.
    draining: bool = False
    # Its LoRA adapter cache (farm.sched.adapters): empty at first, at the spec's budget.
    adapters: AdapterMirror = field(init=False)

    def __post_init__(self) -> None:
        self.adapters = AdapterMirror(self.spec.adapter_cache_bytes)

    @property
    def free(self) -> int:
        return max(0, self.spec.slots - self.busy) if self.alive and not self.draining else 0

    def serves(self, part: str, model: str) -> bool:
        """Whether this worker can run work needing `part` ("high", "vae", ...) of `model`
        (the film's model name as served): it holds "<model>/<part>", or the bare part
        (a worker that serves that part of any model, e.g. in tests and the simulator)."""
        holds = self.spec.holds
        return part in holds or model_part(model, part) in holds


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningTask:
    """A task handed out and not yet reported."""

    kind: TaskKind
    film_id: str
    scene_index: int
    worker_ids: tuple[str, ...]
    # Keys this task will write if it succeeds, and keys it reads.
    output_keys: tuple[str, ...]
    input_keys: tuple[str, ...]
    # Phase and decode: the unit (its index in the scene) and its epoch when the task
    # started; a phase also names its index in the film plan.
    unit_index: int | None = None
    epoch: int = 0
    phase_index: int | None = None
    # Phases on gangs: the worker that keeps each member's output (rank 0), members in
    # order; empty when worker_ids are exactly that.
    leads: tuple[str, ...] = ()
    # A phase on gangs: what the unit may reuse if it succeeds.
    gang: GangMemo | None = None
    # A phase: ((expert part, model), the adapters its expert has active: FilmPlan.adapter_key).
    active: tuple[tuple[str, str], tuple[tuple[str, float], ...]] | None = None

    @property
    def homes(self) -> tuple[str, ...]:
        """Where each output of the task will live."""
        return self.leads or self.worker_ids


@dataclass
class Ledger:
    """The scheduler's books: one home for what starting tasks (farm.sched.tasks) and
    applying their reports (farm.sched.reports) read and change. The Scheduler owns the
    one instance and lends it to those functions; nothing else touches it."""

    films: dict[str, FilmRecord] = field(default_factory=dict)
    workers: dict[str, WorkerState] = field(default_factory=dict)
    # Task id -> what it occupies, reads and writes; slots are freed by its report.
    running: dict[str, RunningTask] = field(default_factory=dict)
    # Key -> worker that holds it: locality, and the data lost with a worker.
    key_home: dict[str, str] = field(default_factory=dict)
    # For the next SchedulerOutput: keys nobody needs any more, and running tasks whose
    # results will be ignored.
    freed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    # Time of the latest schedule() call; events are stamped with it.
    now: float = 0.0
    # Gangs of workers under offload "shard" whose last phase succeeded, and the model
    # whose experts' shards they keep open (farm.model.shard): while every rank still has
    # it as its last gang, any unit's phase of that model may run on it switching nothing.
    shard_gangs: dict[str, tuple[GangMemo, str]] = field(default_factory=dict)

    def open_shard_gangs(self) -> dict[str, list[GangMemo]]:
        """The shard gangs still open, per model (forgets the others)."""
        def is_open(memo: GangMemo) -> bool:
            return all((w := self.workers.get(wid)) is not None and w.alive and not w.draining
                       and w.gang == memo.key for wid in memo.worker_ids)
        self.shard_gangs = {k: v for k, v in self.shard_gangs.items() if is_open(v[0])}
        out: dict[str, list[GangMemo]] = {}
        for memo, model in self.shard_gangs.values():
            out.setdefault(model, []).append(memo)
        return out

    def free(self, key: str) -> None:
        self.freed.append(key)
        self.key_home.pop(key, None)

    def take_housekeeping(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(freed keys, cancelled task ids) since the last call."""
        freed, cancelled = tuple(self.freed), tuple(self.cancelled)
        self.freed, self.cancelled = [], []
        return freed, cancelled
