"""Film records and events as the director keeps and publishes them (domain types)."""

from __future__ import annotations

from dataclasses import dataclass, field

from farm.sched.output import FilmState
from farm.spec.film import Film


@dataclass(frozen=True, slots=True)
class SceneInfo:
    id: str
    num_frames: int
    frames_done: int


@dataclass(frozen=True, slots=True)
class FilmInfo:
    """A snapshot of one film, as the API shows it."""

    film_id: str
    tenant: str
    title: str
    model: str
    state: FilmState
    reason: str
    priority: int
    request_id: str
    create_time: float
    update_time: float
    scenes: tuple[SceneInfo, ...]
    phases_done: int
    phases_total: int
    frames_done: int
    frames_total: int
    # Seconds from creation to the first delivered frame; None before it.
    time_to_first_frame: float | None
    # The film as resolved (every default filled in), for front ends that show the spec.
    film: Film | None = None

    @property
    def name(self) -> str:
        return f"films/{self.film_id}"


@dataclass(frozen=True, slots=True)
class FilmEvent:
    """One thing that happened to a film; `seq` orders a film's events from 1."""

    seq: int
    time: float
    # "state" | "phase" | "frames" | "retry" | "priority" | "error" (a control refused)
    kind: str
    state: FilmState
    message: str
    phases_done: int
    frames_done: int
    scene_id: str = ""
    unit_id: str = ""
    phase_index: int = -1
    expert: str = ""
    worker_ids: tuple[str, ...] = field(default=())
    frame_start: int = 0
    frame_stop: int = 0
    # Compute seconds of the phase or decode (measured where it ran) and, for phases,
    # solver steps times segments.
    duration: float = 0.0
    num_steps: int = 0
    # kind "phase": bytes of its output (latents + solver state) handed to the next task.
    output_bytes: int = 0
    # kind "priority": the film's new priority.
    priority: int = 0
