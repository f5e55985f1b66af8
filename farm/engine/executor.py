"""The executor interface, the worker interface, and the in-process executor.

    EngineCore ──submit(SchedulerOutput)──> Executor ──orders──> Worker(s)
               <──poll() -> [TaskReport]──           <──data───
                                            data store: key -> object
                                            frames ──> FrameSink

A Worker holds weights and runs orders; the executor moves data between workers by key
and reports outcomes. The in-process executor runs everything in this process and
thread; a gang's members are generators it steps together, routing their halos.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from farm.engine.exchange import Exchange, NoExchange
from farm.engine.gangrun import Rendezvous, run_band_ranks, run_ranks
from farm.engine.orders import (
    DecodeOrder,
    DenoiseOrder,
    ImageOrder,
    PromptOrder,
    adapter_note,
    decode_order,
    denoise_orders,
    image_order,
    prompt_order,
)
from farm.plan.film import FilmPlan
from farm.sched.output import (
    DecodeTask,
    FailureKind,
    ImageTask,
    PhaseTask,
    PrepareTask,
    SchedulerOutput,
    TaskReport,
    WorkerSpec,
)

# emit(scene_id, frame index within the scene, frame) for one film.
Emit = Callable[[str, int, Any], None]


class Worker(Protocol):
    """Runs orders with the weights it holds; knows nothing about scheduling."""

    def encode_prompt(self, order: PromptOrder) -> Any: ...

    def encode_image(self, order: ImageOrder) -> Any: ...

    def denoise(self, order: DenoiseOrder, prompt: Any, state: Any | None,
                condition: Any | None, exchange: Exchange) -> Any:
        """Run a phase member to completion, swapping halos through `exchange`."""
        ...

    def denoise_steps(self, order: DenoiseOrder, prompt: Any, state: Any | None,
                      condition: Any | None) -> Generator[tuple[int, dict[int, Any]],
                                                          dict[int, Any], Any]:
        """The same phase as a generator: yields (step, halos out), is sent halos in."""
        ...

    def decode(self, order: DecodeOrder, latents: list[Any], emit: Emit,
               scene: Any | None = None) -> Any | None:
        """Stream a unit's frames; `scene` (chain, scenes with inputs) is the scene's
        encoded inputs, from which the next unit's conditioning is built."""
        ...


class Checkpoints(Protocol):
    """Durable phase outputs (farm.store.artifacts.ArtifactStore)."""

    def save_checkpoint(self, film_id: str, segment_id: str, phase_index: int,
                        data: bytes) -> Any: ...

    def load_checkpoint(self, key: str) -> bytes: ...

    def remove_film_handoffs(self, film_id: str) -> None: ...


class StateCodec(Protocol):
    """Phase outputs to bytes and back (the model layer's Handoff format)."""

    def dumps(self, state: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class FrameSink(Protocol):
    def frame(self, film_id: str, scene_id: str, index: int, frame: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class FleetChange:
    """Workers that joined or disappeared since the executor was last asked."""

    added: tuple[WorkerSpec, ...] = ()
    # Lost (missed heartbeats, its host gone): what it was running fails, and the data it
    # produced is treated as gone with it (its host's object store may be).
    removed: tuple[str, ...] = ()
    # Leaving: to get no new work (it finishes what it runs, then leaves).
    draining: tuple[str, ...] = ()
    # Left cleanly (drained: it handed in its work, and nothing it made is still needed):
    # nothing is recomputed.
    left: tuple[str, ...] = ()


class Executor(Protocol):
    # Where phase outputs are saved durably (the director removes a film's once it has
    # succeeded); None when they are not.
    checkpoints: Checkpoints | None

    def add_film(self, film_id: str, plan: FilmPlan) -> None: ...

    def fleet(self) -> FleetChange:
        """Workers that registered or were lost (e.g. missed heartbeats) since last call."""
        ...

    def submit(self, output: SchedulerOutput) -> None: ...

    def poll(self, timeout: float | None) -> list[TaskReport]:
        """Reports of tasks finished since the last poll; wait up to `timeout` for one.
        A failed report names its FailureKind (failure_of(exception) where one is at hand)."""
        ...

    def take_checkpoints(self) -> list[Any]:
        """Checkpoints saved for tasks reported since the last call (the director records
        them in the job store); always [] without `checkpoints`."""
        ...

    def close(self) -> None: ...


def failure_of(exc: BaseException) -> FailureKind:
    """The kind of a task's exception, or of what caused it (a gang member's failure):
    STORAGE for file I/O errors (OSError, but not a network error or a timeout, which
    are subclasses), ERROR for anything else."""
    cause: BaseException | None = exc
    while cause is not None:
        if is_storage_error(type(cause)):
            return FailureKind.STORAGE
        cause = cause.__cause__
    return FailureKind.ERROR


def is_storage_error(kind: type[BaseException]) -> bool:
    return issubclass(kind, OSError) and not issubclass(kind, ConnectionError | TimeoutError)


class InlineExecutor:
    """Runs every task synchronously, in this process, in the order given."""

    def __init__(self, workers: Mapping[str, Worker], sink: FrameSink,
                 checkpoints: Checkpoints | None = None, codec: StateCodec | None = None,
                 rendezvous: Rendezvous | None = None, gang_timeout_s: float = 300.0):
        """With `checkpoints`, every phase output is also saved durably (and keys of the
        form `ckpt:...` are loaded from there when not in memory, e.g. after a restart).
        `rendezvous`: where gangs inside a segment meet (farm.model.gang.StoreServer);
        needed only when the scheduler hands out layouts larger than 1 x 1."""
        self.workers = dict(workers)
        self.rendezvous, self.gang_timeout_s = rendezvous, gang_timeout_s
        self.sink = sink
        self.checkpoints, self.codec = checkpoints, codec
        self._saved: list[Any] = []
        self.store: dict[str, Any] = {}
        self._plans: dict[str, FilmPlan] = {}
        self._reports: list[TaskReport] = []

    def add_film(self, film_id: str, plan: FilmPlan) -> None:
        self._plans[film_id] = plan

    def fleet(self) -> FleetChange:
        return FleetChange()  # the in-process fleet is fixed at construction

    def submit(self, output: SchedulerOutput) -> None:
        for key in output.freed_keys:
            self.store.pop(key, None)
        # Decodes first: they are cheap and put frames in front of the viewer soonest.
        for task in output.decodes:
            self._reports.append(self._run(task, self._decode))
        for task in output.prepares:
            self._reports.append(self._run(task, self._prepare))
        for task in output.images:
            self._reports.append(self._run(task, self._image))
        for task in output.phases:
            self._reports.append(self._run(task, self._phase))

    def poll(self, timeout: float | None = None) -> list[TaskReport]:
        out, self._reports = self._reports, []
        return out

    def take_checkpoints(self) -> list[Any]:
        """Checkpoints saved since the last call (the director records them)."""
        out, self._saved = self._saved, []
        return out

    def close(self) -> None:
        self.store.clear()

    # ---- tasks -------------------------------------------------------------------------

    def _run(self, task: Any, fn: Callable[[Any], None]) -> TaskReport:
        started = time.perf_counter()
        try:
            written, note = _with_note(fn(task))
        except _MissingKeys as exc:
            return TaskReport(task.task_id, ok=False, error=str(exc), lost_keys=exc.keys,
                              failure=FailureKind.INPUT_LOST)
        except Exception as exc:  # noqa: BLE001 - any worker failure becomes a report
            worker = getattr(exc, "worker_id", None)
            return TaskReport(task.task_id, ok=False, error=f"{type(exc).__name__}: {exc}",
                              worker_id=worker, failure=failure_of(exc))
        return TaskReport(task.task_id, ok=True, duration=time.perf_counter() - started,
                          output_bytes=int(written or 0), note=note)

    def _get(self, *keys: str | None) -> list[Any]:
        for key in keys:
            if key is not None and key not in self.store and key.startswith("ckpt:"):
                self._load_checkpoint(key)
        missing = tuple(k for k in keys if k is not None and k not in self.store)
        if missing:
            raise _MissingKeys(missing)
        return [self.store[k] if k is not None else None for k in keys]

    def _load_checkpoint(self, key: str) -> None:
        """A checkpoint that is missing or fails its checksum is simply not loaded: the
        task reports the key lost and the scheduler recomputes the phase."""
        if self.checkpoints is None or self.codec is None:
            return
        try:
            self.store[key] = self.codec.loads(self.checkpoints.load_checkpoint(key))
        except Exception:  # noqa: BLE001 - unreadable or corrupt: recompute
            pass

    def _save(self, task: PhaseTask, results: list[Any]) -> None:
        if self.checkpoints is None or self.codec is None:
            return
        for m, result in zip(task.members, results, strict=True):
            self._saved.append(self.checkpoints.save_checkpoint(
                task.film_id, m.segment_id, task.phase_index, self.codec.dumps(result)))

    def _prepare(self, task: PrepareTask) -> None:
        order = prompt_order(self._plans[task.film_id], task)
        self.store[task.output_key] = self.workers[task.worker_id].encode_prompt(order)

    def _image(self, task: ImageTask) -> None:
        order = image_order(self._plans[task.film_id], task)
        self.store[task.output_key] = self.workers[task.worker_id].encode_image(order)

    def _phase(self, task: PhaseTask) -> tuple[int, str]:
        orders = denoise_orders(self._plans[task.film_id], task)
        prompt, condition = self._get(task.prompt_key, task.condition_key)
        states = self._get(*(m.input_key for m in task.members))
        if task.layout.size > 1:
            if self.rendezvous is None:
                raise RuntimeError("a gang layout needs a rendezvous "
                                   "(InlineExecutor(rendezvous=...))")
            results = run_ranks(self.workers, task, orders, prompt, states, condition,
                                self.rendezvous.address(), self.gang_timeout_s)
        elif len(orders) == 1:
            results = [self.workers[task.members[0].worker_id].denoise(
                orders[0], prompt, states[0], condition, NoExchange())]
        else:
            results = run_gang(
                [(self.workers[m.worker_id], m.worker_id) for m in task.members],
                orders, prompt, states, condition)
        self._save(task, results)
        for m, result in zip(task.members, results, strict=True):
            self.store[m.output_key] = result
        notes = (phase_note(results), adapter_note(orders[0]))
        return sum(getattr(r, "nbytes", 0) for r in results), "; ".join(n for n in notes if n)

    def _decode(self, task: DecodeTask) -> None:
        order = decode_order(self._plans[task.film_id], task)
        latents = self._get(*(s.key for s in task.slices))
        emit: Emit = lambda scene, i, frame: self.sink.frame(task.film_id, scene, i, frame)  # noqa: E731
        scene = self._get(task.scene_key) if task.scene_key is not None else []

        def decode(worker: Worker, o: DecodeOrder) -> Any:
            return worker.decode(o, latents, emit, *scene)
        if task.band_workers:
            if self.rendezvous is None:
                raise RuntimeError("a decode over several ranks needs a rendezvous "
                                   "(InlineExecutor(rendezvous=...))")
            condition = run_band_ranks(self.workers, task, order, decode,
                                       self.rendezvous.address(), self.gang_timeout_s)
        else:
            condition = decode(self.workers[task.worker_id], order)
        if task.condition_key is not None:
            self.store[task.condition_key] = condition


def _with_note(done: Any) -> tuple[Any, str]:
    # a task returns what it wrote, or (that, its render-log note)
    return done if isinstance(done, tuple) else (done, "")


def phase_note(results: list[Any]) -> str:
    """The render-log note of a phase: its step cache and the transformer calls it
    skipped, over every member (farm.model.speed.CacheStats on each Handoff)."""
    stats = [c for r in results if (c := getattr(r, "cache", None)) is not None]
    if not stats:
        return ""
    calls, skipped = sum(c.calls for c in stats), sum(c.skipped for c in stats)
    return f"{stats[0].label}: skipped {skipped} of {calls} transformer calls"


class _MissingKeys(RuntimeError):
    def __init__(self, keys: tuple[str, ...]):
        super().__init__(f"input data lost: {', '.join(keys)}")
        self.keys = keys


class MemberFailed(RuntimeError):
    def __init__(self, worker_id: str, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.worker_id = worker_id


def run_gang(workers: list[tuple[Worker, str]], orders: tuple[DenoiseOrder, ...], prompt: Any,
             states: list[Any], condition: Any) -> list[Any]:
    """Step a gang's members together in this thread, routing their halos each step.

    Every member yields once per step with its halos for its neighbours; when all have
    yielded, each is sent what its neighbours posted. Members are independent otherwise,
    so the result equals one member per process with a blocking exchange.
    """
    gens = [worker.denoise_steps(order, prompt, state, condition)
            for (worker, _), order, state in zip(workers, orders, states, strict=True)]
    results: list[Any] = [None] * len(gens)
    inbox: dict[int, dict[int, Any]] = {i: {} for i in range(len(gens))}
    live, first = set(range(len(gens))), True
    while live:
        posted: dict[int, dict[int, Any]] = {}
        for i in sorted(live):
            try:
                _, out = next(gens[i]) if first else gens[i].send(inbox[i])
            except StopIteration as done:
                results[i] = done.value
                continue
            except Exception as exc:  # noqa: BLE001 - blame the member's worker
                raise MemberFailed(workers[i][1], exc) from exc
            posted[i] = out
        live, first = set(posted), False
        inbox = {i: {src: out[i] for src, out in posted.items() if i in out} for i in live}
    return results
