"""The contract between the scheduler and executors: frozen values of ids and counters.

Tensors never pass through here. Data (prompt embeddings, latents + solver state,
conditioning) is named by opaque string keys; the executor keeps the data under those
keys (a dict in process, Ray object refs in a cluster) and the scheduler says when a key
may be freed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class TaskKind(StrEnum):
    """What a task does (the values are the executors' work item kinds)."""

    PREPARE = "prepare"  # encode a scene's prompts
    IMAGE = "image"  # encode a scene's input media
    PHASE = "phase"  # denoise a unit through one phase
    DECODE = "decode"  # decode a unit's latents into frames


class FailureKind(StrEnum):
    """Why a task or a film failed, named where that is known (the executor that caught
    the exception, or the scheduler for what it decides itself); the values are the
    `reason` labels of the failure metrics, a small fixed set."""

    # The task raised: a bug, out of memory, bad input. The default.
    ERROR = "error"
    # Its worker went away (crash, preemption; Scheduler.remove_worker), or a film lost
    # a task's worker max_worker_losses times.
    WORKER_LOST = "worker_lost"
    # Input data was gone: lost with a node, or a checkpoint missing or corrupt.
    INPUT_LOST = "input_lost"
    # Reading or writing storage failed (disk full, I/O error).
    STORAGE = "storage"
    # Films only: every worker that could run its work was excluded after failures.
    EXCLUDED = "excluded"
    # Films only: cancelled (by a user, a stalled engine, a failed frame archive).
    CANCELLED = "cancelled"


class FilmState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        return self in (FilmState.SUCCEEDED, FilmState.FAILED, FilmState.CANCELLED)


def model_part(model: str, part: str) -> str:
    """The name a worker holds `part` of `model` by (WorkerSpec.holds): "<model>/<part>"."""
    return f"{model}/{part}"


def model_parts(model: str, parts: Iterable[str]) -> frozenset[str]:
    """WorkerSpec.holds of a worker holding `parts` of `model`."""
    return frozenset(model_part(model, p) for p in parts)


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """A worker as it advertises itself."""

    worker_id: str
    # What it holds: parts of a model, each "<model>/<part>" (e.g. "toy/high"), the model
    # being a film's model name as the farm serves it; parts are expert names ("high",
    # "low", "dense"), "text" (encoder), "vae". A bare part serves that part of any
    # model: only for fleets where that cannot mix weights up (tests, the simulator).
    holds: frozenset[str]
    # Units of work it runs at once (gang members count one each).
    slots: int = 1
    # The pool (deployment) it belongs to, for per-pool statistics; "" = its own id.
    pool: str = ""
    # Where its experts wait between uses (PoolConfig.offload): "none", or "model" /
    # "group" (host memory: each phase pays the copy in, farm.spec.weights.
    # offload_seconds), so placement prefers a worker without offload when it may choose.
    offload: str = "none"
    # Bytes of LoRA adapters it keeps on its GPU (PoolConfig.adapter_cache_gb; the
    # scheduler mirrors that cache: farm.sched.adapters).
    adapter_cache_bytes: int = 2_000_000_000


@dataclass(frozen=True, slots=True)
class UnitResume:
    """Where a unit stands when a film is re-admitted (after a restart, for a re-render)."""

    unit_id: str
    # Phases completed, and segment id -> data key of the last one's output (checkpoint
    # keys the executor can load). Empty with phases_done 0.
    phases_done: int
    latest: tuple[tuple[str, str], ...] = ()
    # Every frame of the unit is delivered already.
    decoded: bool = False


@dataclass(frozen=True, slots=True)
class PrepareTask:
    """Encode a scene's prompt and negative prompt once, for all its segments."""

    task_id: str
    film_id: str
    scene_id: str
    worker_id: str
    # Key under which the executor stores the prompt embeddings.
    output_key: str


@dataclass(frozen=True, slots=True)
class ImageTask:
    """Encode a scene's inputs (VAE): the first unit's conditioning (first frame, control
    video, ...) and what every unit reuses (reference images, the character)."""

    task_id: str
    film_id: str
    scene_id: str
    worker_id: str
    output_key: str


@dataclass(frozen=True, slots=True)
class Layout:
    """How one segment's phase is split over a gang: cfg x sp ranks (CFG parallel x
    Ulysses sequence parallel); 1 x 1 is one worker. Rank = cfg_rank * sp + sp_rank."""

    cfg: int = 1
    sp: int = 1

    @property
    def size(self) -> int:
        return self.cfg * self.sp


@dataclass(frozen=True, slots=True)
class MemberTask:
    """One segment of a phase, on one worker (or a gang of workers, see Layout)."""

    segment_id: str
    # Rank 0 of the segment's gang: it keeps the output (every rank computes the same).
    worker_id: str
    # Latents + solver state after the previous phase; None = start from initial noise.
    input_key: str | None
    # Key for this phase's latents + solver state.
    output_key: str
    # Workers of ranks 1 .. layout.size - 1 of the segment's gang (empty for 1 x 1).
    helpers: tuple[str, ...] = ()

    @property
    def ranks(self) -> tuple[str, ...]:
        """Worker of every rank of this member's gang, rank 0 first."""
        return (self.worker_id, *self.helpers)


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseTask:
    """Run steps [start_step, stop_step) of one expert on every segment of a unit.

    A unit with several segments (windows) is a gang: its members step together and swap
    their overlap predictions every step. With a layout larger than 1 x 1 each member
    also runs on a gang of its own (CFG / sequence parallel); rank r of every member
    swaps halos with rank r of its neighbours ("lanes").
    """

    task_id: str
    film_id: str
    scene_id: str
    unit_id: str
    # Index of the phase in the film plan, and the expert it runs (index into experts).
    phase_index: int
    expert: int
    start_step: int
    stop_step: int
    members: tuple[MemberTask, ...]
    # Prompt embeddings of the scene.
    prompt_key: str
    # Conditioning: the scene's image (first unit) or, in chain mode, the previous
    # unit's last frame; None for plain text-to-video.
    condition_key: str | None
    # 1 for the first try of this phase of this unit.
    attempt: int
    # Every member's gang layout (farm.sched.gangs); 1 x 1: one worker per member.
    layout: Layout = Layout()
    # The name the gangs meet under: this task's id when they form now, or that of the
    # unit's previous phase, whose gangs (the same workers, ranks and layout, nothing
    # else ganged on them since) the workers keep open and reuse (no new process groups).
    gang_key: str = ""
    # LoRA files its workers load before it runs (the ledger's mirror of their adapter
    # caches, farm.sched.adapters): loads over all its workers, and the most bytes one
    # worker loads (what the phase waits for).
    adapter_loads: int = 0
    adapter_load_bytes: int = 0

    @property
    def forms_gang(self) -> bool:
        """Whether this task's gangs form now (rather than reuse the previous phase's)."""
        return self.layout.size > 1 and self.gang_key in ("", self.task_id)

    @property
    def worker_ids(self) -> tuple[str, ...]:
        """Every worker the task occupies: each member's ranks, members in order."""
        return tuple(w for m in self.members for w in m.ranks)


@dataclass(frozen=True, slots=True)
class DecodeSlice:
    """Latent frames [latent_start, latent_stop) of a segment's final latents."""

    segment_id: str
    key: str
    latent_start: int
    latent_stop: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeTask:
    """Decode a unit's final latents into frames, streaming them out in order."""

    task_id: str
    film_id: str
    scene_id: str
    unit_id: str
    worker_id: str
    # Slices of the unit's segments, in frame order, decoded with one causal cache.
    slices: tuple[DecodeSlice, ...]
    # Frames of the scene this decode yields: [frame_start, frame_stop); the first
    # `drop_frames` decoded frames are dropped (chain: the shared first frame).
    frame_start: int
    frame_stop: int
    drop_frames: int
    # Chain mode: store conditioning for the next unit (from the last frame) under this
    # key; `condition_frames` is that unit's pixel frame count.
    condition_key: str | None
    condition_frames: int
    attempt: int
    # Chain mode, scenes with inputs: the scene's encoded inputs (the ImageTask's output:
    # references, the character), which the next unit's conditioning reuses.
    scene_key: str | None = None
    # Band-parallel decode (farm.plan.segments.decode_bands): the frame's vertical bands,
    # and the workers beside `worker_id` that decode some (rank r of k = 1 + len(...)
    # decodes bands r, r + k, ...; rank 0 streams the frames). Same bits on any k.
    bands: int = 1
    band_workers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SchedulerOutput:
    """Everything to start now, plus housekeeping for the executor."""

    prepares: tuple[PrepareTask, ...] = ()
    images: tuple[ImageTask, ...] = ()
    phases: tuple[PhaseTask, ...] = ()
    decodes: tuple[DecodeTask, ...] = ()
    # Data keys no longer needed by any film; the executor may drop them.
    freed_keys: tuple[str, ...] = ()
    # Running tasks whose results will be ignored (film ended, unit rolled back after
    # data loss, a gang member's worker lost); stop them if you can, and report them
    # anyway (ok=False is fine; reports of tasks already written off are ignored).
    cancelled_task_ids: tuple[str, ...] = ()

    @property
    def num_tasks(self) -> int:
        return len(self.prepares) + len(self.images) + len(self.phases) + len(self.decodes)

    @property
    def is_empty(self) -> bool:
        return self.num_tasks == 0 and not self.freed_keys and not self.cancelled_task_ids


@dataclass(frozen=True, slots=True)
class TaskReport:
    """The outcome of one task, sent back by the executor."""

    task_id: str
    ok: bool
    # Why it failed ("" when ok). Shown to users and counted by reason.
    error: str = ""
    # The worker to blame for a failure (a gang names the member that failed).
    worker_id: str | None = None
    # Input keys the executor could not find (data lost with a node).
    lost_keys: tuple[str, ...] = ()
    # Seconds the task ran, as measured by the executor (for statistics only).
    duration: float = 0.0
    # Bytes of what the task wrote (a phase: latents + solver state), for statistics.
    output_bytes: int = 0
    # Why it failed (None when ok). WORKER_LOST: the task died with its worker (crash,
    # preemption; see Scheduler.remove_worker), so it is retried without blaming the worker
    # or using one of its max_attempts. A failure without a kind is an ERROR, or an
    # INPUT_LOST when it names lost_keys.
    failure: FailureKind | None = None
    # What the render log says of a finished task beyond its numbers (a phase's step
    # cache: its setting and the transformer calls it skipped).
    note: str = ""


# ---- events returned by update_from_output ------------------------------------------


@dataclass(frozen=True, slots=True)
class FilmStateChanged:
    film_id: str
    state: FilmState
    reason: str = ""
    time: float = 0.0
    # Why a film FAILED or was CANCELLED; None for other states.
    failure: FailureKind | None = None


@dataclass(frozen=True, slots=True)
class PhaseFinished:
    film_id: str
    unit_id: str
    phase_index: int
    expert: int
    # Solver steps times segments: the work this phase did.
    num_steps: int
    worker_ids: tuple[str, ...]
    time: float = 0.0
    # Seconds the phase ran (executor-measured) and bytes it handed over.
    duration: float = 0.0
    output_bytes: int = 0
    # The report's note (TaskReport.note), for the render log.
    note: str = ""


@dataclass(frozen=True, slots=True)
class FramesDecoded:
    film_id: str
    scene_id: str
    frame_start: int
    frame_stop: int
    time: float = 0.0
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class TaskRetried:
    film_id: str
    task_id: str
    reason: str
    # Attempt number of the retry that will run next.
    attempt: int
    worker_id: str | None = None
    time: float = 0.0
    failure: FailureKind = FailureKind.ERROR


Event = FilmStateChanged | PhaseFinished | FramesDecoded | TaskRetried


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One pool's load, for metrics and the pool balancer."""

    pool: str
    # Ready phases that a worker of this pool could run, and phases running on it.
    queued_phases: int
    running_phases: int
    # Live workers, their slots, and slots running work.
    workers: int
    slots: int
    busy_slots: int

    @property
    def busy_fraction(self) -> float:
        return min(1.0, self.busy_slots / self.slots) if self.slots else 0.0


@dataclass(frozen=True, slots=True)
class FilmProgress:
    """Counters for progress displays and the API."""

    film_id: str
    state: FilmState
    phases_done: int
    phases_total: int
    frames_done: int
    frames_total: int
    reason: str = ""
    excluded_worker_ids: tuple[str, ...] = field(default=())
