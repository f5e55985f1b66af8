"""What travels between the director and pool workers (plain, picklable values).

The director never pushes work: workers register, then long-poll for WorkItems, run them
with the weights they hold and report back. Pulling lets the scheduler target a specific
replica (locality, expert, exclusion) behind Serve's load balancer, and a worker that
stops sending heartbeats is a lost worker whose tasks the scheduler retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from farm.sched.output import FailureKind


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One worker's part of a task."""

    task_id: str
    # "prepare" | "image" | "phase" | "decode"
    kind: str
    # Work orders (farm.engine.orders); a phase part has one per local gang member.
    orders: tuple[Any, ...]
    # Data keys this part reads, in kind-specific order (see RayExecutor._items), and the
    # object refs behind them (passed by reference; the worker resolves them).
    input_keys: tuple[str | None, ...]
    refs: dict[str, Any]
    # Keys this part writes, aligned with its results.
    output_keys: tuple[str, ...]
    # Gangs spread over several workers swap halos through this named mailbox actor.
    mailbox: str | None = None
    # Phase parts: input key of each local member's state (None = initial noise), and
    # the phase's index in the film plan (checkpoints are named by it).
    state_keys: tuple[str | None, ...] = field(default=())
    phase_index: int = -1


@dataclass(frozen=True, slots=True)
class WorkReport:
    worker_id: str
    task_id: str
    ok: bool
    error: str = ""
    # key -> object ref of what this part wrote (owned by the director's actor)
    outputs: dict[str, Any] = field(default_factory=dict)
    lost_keys: tuple[str, ...] = ()
    duration: float = 0.0
    # Checkpoints written for the outputs (farm.store.artifacts.Checkpoint).
    checkpoints: tuple[Any, ...] = ()
    # A gang rank that failed because another rank did (a broken collective): the
    # director waits for the report of the rank it echoes, which is the one to blame.
    echo: bool = False
    output_bytes: int = 0
    # What kind of failure (farm.sched.output.FailureKind), named by the pool where the
    # exception was caught; None on success.
    failure: FailureKind | None = None
    # The render-log note of this part (farm.engine.executor.phase_note).
    note: str = ""
