"""Mutable bookkeeping behind the scheduler: films, scenes, units, workers, running tasks.

Only the scheduler touches these; everything it hands out is a frozen value from
`farm.sched.output`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from farm.plan.film import FilmPlan, Unit
from farm.sched.output import FilmState, WorkerSpec


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
    # attempts used per (kind, phase index): ("phase", 0), ("decode", 0)
    attempts: Counter[tuple[str, int]] = field(default_factory=Counter)


@dataclass
class SceneState:
    scene_id: str
    index: int
    units: list[UnitState]
    prompt_key: str | None = None
    prompt_running: str | None = None
    prompt_attempts: int = 0
    # Scenes with a first-frame image: its encoded conditioning for the first unit.
    has_image: bool = False
    image_key: str | None = None
    image_running: str | None = None
    image_attempts: int = 0
    frames_done: int = 0


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
    # Work handed out so far (segment-steps), for fair share.
    service: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)
    excluded: set[str] = field(default_factory=set)
    phases_done: int = 0

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
    busy: int = 0
    alive: bool = True

    @property
    def free(self) -> int:
        return max(0, self.spec.slots - self.busy) if self.alive else 0


@dataclass
class RunningTask:
    """A task handed out and not yet reported."""

    kind: str  # "prepare" | "image" | "phase" | "decode"
    film_id: str
    scene_index: int
    unit_index: int  # -1 for prepare
    phase_index: int  # -1 unless kind == "phase"
    worker_ids: tuple[str, ...]
    # Keys this task will write if it succeeds, and keys it reads.
    output_keys: tuple[str, ...]
    input_keys: tuple[str, ...]
