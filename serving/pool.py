"""A pool replica: holds its weights, pulls WorkItems from the director, runs them.

    register ──> director          (once; again if the director forgot us)
    heartbeat ─> director          (every second, from its own thread)
    loop: next_work (long poll) ─> run each item in a thread ─> report (refs of results)
    stopped by Serve (scale-down, a draining host):
          drain ─> director        (no new work; keep running and reporting what we hold)
          ...until it says nothing needs us ─> leave ─> exit

Results are `ray.put` by this replica, which owns them: a draining replica stays until
every result it made has been read by the phases that needed it; if it dies (or its
host does), the director's scheduler recomputes whatever still needed them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray

from farm.engine.exchange import NoExchange
from farm.engine.executor import failure_of, phase_note, run_gang
from farm.engine.orders import adapter_note
from farm.sched.output import FailureKind, WorkerSpec, model_parts
from farm.store.artifacts import ArtifactStore, CheckpointError, is_checkpoint_key
from serving.config import PoolConfig
from serving.mailbox import MailboxExchange
from serving.protocol import WorkItem, WorkReport

log = logging.getLogger("reelfarm.pool")
FRAME_BATCH = 4  # frames per call to the director (one latent frame decodes to 4)


def _director_handle() -> Any:
    """The DirectorServer of this app (it binds the pools, so it cannot be bound here)."""
    from ray import serve

    return serve.get_deployment_handle("DirectorServer", serve.get_replica_context().app_name)


def _replica_id() -> str:
    from ray import serve

    try:
        return serve.get_replica_context().replica_id.unique_id
    except Exception:  # noqa: BLE001 - outside Serve (plain actor, tests)
        return uuid.uuid4().hex[:8]


class PoolWorker:
    def __init__(self, pool: dict, model: str, device: str, dtype: str, artifacts: str):
        """`model`: the served model (its name, as films give it) whose parts the pool holds."""
        import torch

        from farm.model.adapter_cache import AdapterCacheConfig
        from farm.model.loader import resolve_model
        from farm.model.worker import TorchWorker
        from farm.observe.logs import quiet_libraries

        self.pool = PoolConfig.model_validate(pool)
        if self.pool.torch_threads:
            torch.set_num_threads(self.pool.torch_threads)
        quiet_libraries()
        self.model = model
        self.worker = TorchWorker(resolve_model(model), device, getattr(torch, dtype),
                                  offload=self.pool.offload, adapters=AdapterCacheConfig(
                                      round(self.pool.adapter_cache_gb * 1e9)))
        self.artifacts = ArtifactStore(artifacts)
        if self.pool.preload:
            self._preload()
        self.director = _director_handle()
        self.replica = _replica_id()
        self.registrations = 0
        self.worker_id = ""
        self.leaving = False
        self.error: str | None = None
        # Items run on `slots` long-lived threads: every new thread that calls torch gets
        # its own OpenMP team, and idle teams spinning on few cores slow everything down.
        self._runner = ThreadPoolExecutor(max_workers=self.pool.slots, thread_name_prefix="item")
        threading.Thread(target=self._serve, name="pool-pull", daemon=True).start()

    def _preload(self) -> None:
        """Load what this replica holds once, at start, before it registers for work
        (PoolConfig.preload; else each part loads when work first needs it)."""
        loader = self.worker.loader
        for part in self.pool.holds:
            {"text": loader.text, "vae": loader.vae}.get(part, lambda p=part: loader.expert(p))()

    def check_health(self) -> None:
        if self.error is not None:
            raise RuntimeError(self.error)

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """The pool's backlog, for a pool with autoscaling (serving.autoscale)."""
        if not self.worker_id or self.leaving:
            return {}
        return await self.director.pool_load.remote(self.pool.name)

    async def __del__(self) -> None:
        """Serve stops this replica: drain (the director gives us nothing new while we
        finish and report what we hold, and until the results we own have been read),
        then leave. Serve kills us after the pool's drain_timeout_s whatever happens; the
        director then recomputes what was lost."""
        if not getattr(self, "worker_id", ""):  # (never registered, or __init__ failed)
            return
        while not await self.director.drain.remote(self.worker_id):
            await asyncio.sleep(0.2)
        self.leaving = True  # the pull loop and the heartbeats stop
        await self.director.leave.remote(self.worker_id)
        log.info("pool worker %s drained and left", self.worker_id)

    # ---- pull loop ------------------------------------------------------------------

    def _serve(self) -> None:
        while not self.leaving:
            try:
                self._register()
                self._pull()
            except Exception as exc:  # noqa: BLE001 - keep serving; Serve sees health
                log.exception("pool worker %s: %s", self.worker_id, exc)
                time.sleep(1.0)

    def _register(self) -> None:
        # <pool>-<Serve replica id>-<registration>@<node address>: operators find the
        # replica by it, and the render log says which host ran each phase.
        self.registrations += 1
        self.worker_id = (f"{self.pool.name.lower()}-{self.replica}-{self.registrations}"
                          f"@{ray.util.get_node_ip_address()}")
        # pool: the Serve pool name, the `pool` label of the per-pool metrics and pages.
        # holds: "<model>/<part>", so only films of this model come here (Need.model).
        spec = WorkerSpec(self.worker_id, model_parts(self.model, self.pool.holds),
                          self.pool.slots, pool=self.pool.name, offload=self.pool.offload,
                          adapter_cache_bytes=round(self.pool.adapter_cache_gb * 1e9))
        self.director.register.remote(spec).result()
        beat = threading.Thread(target=self._heartbeat, args=(self.worker_id,), daemon=True)
        beat.start()

    def _heartbeat(self, worker_id: str) -> None:
        while worker_id == self.worker_id and not self.leaving:
            try:
                if not self.director.heartbeat.remote(worker_id).result():
                    return
            except Exception:  # noqa: BLE001 - the director may be restarting
                pass
            time.sleep(1.0)

    def _pull(self) -> None:
        while not self.leaving:
            items = self.director.next_work.remote(self.worker_id, 1.0).result()
            if items is None:
                return  # the director lost us: register again under a new id
            for item in items:
                self._runner.submit(self._run, item)

    def _run(self, item: WorkItem) -> None:
        started = time.perf_counter()
        try:
            outputs, saved, nbytes, note = self._execute(item)
            report = WorkReport(self.worker_id, item.task_id, True, outputs=outputs,
                                duration=time.perf_counter() - started, checkpoints=saved,
                                output_bytes=nbytes, note=note)
        except (ray.exceptions.ObjectLostError, CheckpointError) as exc:
            # Which input it was is not known here: every input is reported lost, and the
            # scheduler rolls the unit back (recomputing is always correct).
            report = WorkReport(self.worker_id, item.task_id, False, f"input lost: {exc}",
                                lost_keys=tuple(k for k in (*item.input_keys, *item.state_keys)
                                                if k), failure=FailureKind.INPUT_LOST)
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            report = WorkReport(self.worker_id, item.task_id, False, f"{type(exc).__name__}: {exc}",
                                echo=bool(getattr(exc, "gang_echo", False)),
                                failure=failure_of(exc))
        self.director.report.remote(report).result()

    # ---- execution --------------------------------------------------------------------

    def _put(self, value: Any) -> Any:
        return ray.put(value)

    def _fetch(self, ref: Any) -> Any:
        return ray.get(ref)

    def _get(self, item: WorkItem, key: str | None) -> Any:
        """An input by key: a Ray object, or a checkpoint in the artifact store (resume);
        a handoff a bf16 / fp8 pool encoded comes decoded (PoolConfig.handoff_codec)."""
        if key is None:
            return None
        from farm.model.solver import Handoff, received

        if key not in item.refs and is_checkpoint_key(key):
            return Handoff.from_bytes(self.artifacts.load_checkpoint(key))
        return received(self._fetch(item.refs[key]))

    def _execute(self, item: WorkItem) -> tuple[dict[str, Any], tuple[Any, ...], int, str]:
        """Outputs by key, checkpoints, bytes written, the render-log note."""
        saved: tuple[Any, ...] = ()
        note = ""
        if item.kind == "prepare":
            results = [self.worker.encode_prompt(item.orders[0])]
        elif item.kind == "image":
            results = [self.worker.encode_image(item.orders[0])]
        elif item.kind == "phase":
            computed = self._phase(item)
            note = phase_note(computed)  # before _wire: a wire handoff keeps only bytes
            note = "; ".join(n for n in (note, adapter_note(item.orders[0])) if n)
            results = self._wire(item, computed)
            saved = self._checkpoint(item, results)
        else:
            results = self._decode(item)
        nbytes = sum(getattr(r, "nbytes", 0) for r in results)
        return ({k: self._put(v) for k, v in zip(item.output_keys, results, strict=True)}, saved,
                nbytes, note)

    def _wire(self, item: WorkItem, results: list[Any]) -> list[Any]:
        """Phase outputs as this pool passes them on: handoffs to a next phase in its
        handoff_codec (exact: unchanged), the last phase's latents exact (to_wire). The
        checkpoint stores the same bytes, so a resumed film reads what its readers read."""
        from farm.model.solver import to_wire

        codec = self.pool.handoff_codec
        # not strict: a gang rank other than 0 has no outputs
        return [to_wire(r, codec, final=o.stop_step == o.model.num_steps)
                for o, r in zip(item.orders, results, strict=False)]

    def _checkpoint(self, item: WorkItem, results: list[Any]) -> tuple[Any, ...]:
        """Phase outputs to the artifact store, so a restarted director can resume."""
        if not item.output_keys:
            return ()  # a gang rank other than 0: rank 0 keeps the output
        return tuple(self.artifacts.save_checkpoint(o.film_id, o.segment_id, item.phase_index,
                                                    r.to_bytes())
                     for o, r in zip(item.orders, results, strict=True))

    def _phase(self, item: WorkItem) -> list[Any]:
        prompt, condition = self._get(item, item.input_keys[0]), self._get(item, item.input_keys[1])
        states = [self._get(item, k) for k in item.state_keys]
        rank = item.orders[0].gang_rank
        if rank is not None and rank.size > 1:
            # One rank of a gang inside a segment (the director put each rank on its own
            # replica): join its process groups, swap halos along its lane if windows.
            exchange = MailboxExchange(item.mailbox) if item.mailbox else NoExchange()
            result = self.worker.denoise(item.orders[0], prompt, states[0], condition, exchange)
            return [result] if item.output_keys else []
        if item.mailbox is None:
            if len(item.orders) == 1:
                return [self.worker.denoise(item.orders[0], prompt, states[0], condition,
                                            NoExchange())]
            return run_gang([(self.worker, self.worker_id)] * len(item.orders), item.orders,
                            prompt, states, condition)
        # Members of a gang spread over replicas: each local member in its own thread.
        exchange = MailboxExchange(item.mailbox)
        results: list[Any] = [None] * len(item.orders)
        errors: list[BaseException] = []

        def member(i: int) -> None:
            try:
                results[i] = self.worker.denoise(item.orders[i], prompt, states[i], condition,
                                                 exchange)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=member, args=(i,)) for i in range(len(item.orders))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results

    def _decode(self, item: WorkItem) -> list[Any]:
        order = item.orders[0]
        data = [self._get(item, k) for k in item.input_keys]
        latents, scene = data[:len(order.slices)], data[len(order.slices):]
        batch: list[tuple[str, int, Any]] = []
        sent: list[Any] = []

        def flush() -> None:
            # Not awaited one by one: frames carry their index and the director's stream
            # puts them in order, so the decoder keeps decoding while frames travel.
            if batch:
                sent.append(self.director.frames.remote(order.film_id, list(batch)))
                batch.clear()

        def emit(scene_id: str, index: int, frame: Any) -> None:
            batch.append((scene_id, index, frame))
            if len(batch) >= FRAME_BATCH:
                flush()

        condition = (self.worker.decode(order, latents, emit, scene[0]) if scene
                     else self.worker.decode(order, latents, emit))
        flush()
        for response in sent:  # every frame delivered before the task reports success
            response.result()
        return [condition] if item.output_keys else []
