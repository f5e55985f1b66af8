"""The director deployment: the application's ingress and its single replica owning the
Director (scheduler, film records, frame archives) with a RayExecutor. It serves the
FilmService RPCs (through Serve's gRPC proxy), the pull protocol its pool workers call,
and plain methods for Python callers holding a DeploymentHandle."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from farm.api.auth import Authenticator
from farm.api.errors import ModelNotServed
from farm.api.rpcs import Rpc, bind_rpcs
from farm.api.service import FilmApi
from farm.director.delivery import WeightHashes, served_delivery
from farm.director.director import Director, DirectorConfig
from farm.director.records import FilmEvent, FilmInfo
from farm.engine.core import EngineCore
from farm.media.library import MediaLibrary, MediaLimits
from farm.model.footprint import edge_checks
from farm.observe.instruments import FarmMetrics
from farm.observe.metrics import RaySink
from farm.sched.config import SchedulerConfig
from farm.sched.output import FilmState, WorkerSpec
from farm.sched.scheduler import Scheduler
from farm.spec.errors import SpecError
from farm.spec.film import Film, resolve_film
from farm.spec.limits import Limits
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard
from farm.stitch.stream import FrameRouter
from farm.store.artifacts import ArtifactStore
from farm.store.jobs import JobStore
from serving.autoscale import QUEUED, RUNNING
from serving.config import ServingConfig
from serving.grpc_ingress import ServeRpc
from serving.mailbox import create_mailbox
from serving.protocol import WorkItem, WorkReport
from serving.ray_executor import RayExecutor


class DirectorServer:
    def __init__(self, config: dict, *pools: Any):
        """`pools`: the pool deployments, bound here so that they deploy with the app."""
        cfg = ServingConfig.model_validate(config)
        # Served name -> source; the first is the default of films that name no model.
        self.sources = cfg.sources()
        router = FrameRouter()
        self._wakeups: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.executor = RayExecutor(router, liveness_timeout=cfg.director.liveness_timeout_s,
                                    mailbox_factory=create_mailbox, notify=self._wake,
                                    checkpoints=ArtifactStore(cfg.artifacts))
        # The edge of the serving process: the only place that reads the environment.
        db = cfg.job_store_url(os.environ)
        store = JobStore(db).migrate() if db else None
        gangs = cfg.director.gangs.policy() if cfg.director.gangs is not None else None
        engine = EngineCore(Scheduler(SchedulerConfig(max_attempts=cfg.director.max_attempts,
                                                      gangs=gangs,
                                                      film_order=cfg.director.film_order)),
                            self.executor, wait_for_workers=True)
        media = MediaLibrary(cfg.artifacts, MediaLimits(cfg.media.max_bytes,
                                                        cfg.media.max_seconds))
        delivery = served_delivery(cfg.signing.signer(cfg.artifacts), WeightHashes(self.sources),
                                   media.describe)
        self.director = Director(engine, router, store=store, metrics=FarmMetrics(RaySink()),
                                 config=DirectorConfig(
            Path(cfg.artifacts), cfg.director.max_unfinished_films,
            cfg.director.max_unfinished_per_tenant, delivery=delivery,
            models=tuple(self.sources))).start()
        self.limits = Limits(worker_memory_gb=cfg.director.worker_memory_gb)
        families = {name: source.family for name, source in self.sources.items()}
        self.rpc = ServeRpc(FilmApi(self.director, families, checks=self._edge_checks,
                                    media=media, require_rights=cfg.media.require_rights),
                            _authenticator(cfg.tokens_file))

    def _edge_checks(self, film: Film) -> list:
        return edge_checks(film, self.sources[film.model], self.limits)

    def __del__(self) -> None:
        if hasattr(self, "director"):  # (not when __init__ failed part way)
            self.director.stop(timeout=1.0)

    def __serve_build_asgi_app__(self):  # noqa: N807 - Ray Serve's hook for serve.ingress()
        """The web monitor over this replica's FilmApi and tokens (HTTP ingress)."""
        from farm.web.app import create_app
        from farm.web.monitor import Monitor

        return create_app(Monitor(self.rpc.api, self.rpc.auth))

    # ---- pool protocol ----------------------------------------------------------------

    async def register(self, spec: WorkerSpec) -> None:
        self.executor.register(spec)

    async def drain(self, worker_id: str) -> bool:
        return self.executor.drain(worker_id)

    async def leave(self, worker_id: str) -> None:
        self.executor.leave(worker_id)

    async def pool_load(self, pool: str) -> dict[str, float]:
        """The pool's backlog for its autoscaling (serving.autoscale); empty while the
        director has no live worker of it."""
        for stats in self.director.fleet.pools:
            if stats.pool == pool:
                return {QUEUED: stats.queued_phases, RUNNING: stats.running_phases}
        return {}

    async def heartbeat(self, worker_id: str) -> bool:
        return self.executor.heartbeat(worker_id)

    def _wake(self, worker_id: str) -> None:
        """Engine thread -> event loop: work was queued for this worker."""
        event, loop = self._wakeups.get(worker_id), self._loop
        if event is not None and loop is not None:
            loop.call_soon_threadsafe(event.set)

    async def next_work(self, worker_id: str, wait_s: float) -> list[WorkItem] | None:
        """Long poll: the worker's queued items, waiting up to wait_s for some."""
        self._loop = asyncio.get_running_loop()
        event = self._wakeups.setdefault(worker_id, asyncio.Event())
        event.clear()  # before take(): work queued after this point sets it again
        items = self.executor.take(worker_id)
        if items is None or items:
            return items
        try:
            await asyncio.wait_for(event.wait(), wait_s)
        except TimeoutError:
            pass
        return self.executor.take(worker_id)

    async def report(self, report: WorkReport) -> None:
        self.executor.report(report)

    async def frames(self, film_id: str, batch: list[tuple[str, int, Any]]) -> None:
        for scene_id, index, frame in batch:
            self.executor.frame(film_id, scene_id, index, frame)

    async def assignments(self) -> dict[str, list[str]]:
        return self.executor.assignments()

    async def live_workers(self, max_age_s: float = 3.0) -> list[str]:
        return self.executor.live_workers(max_age_s)

    async def work_log(self) -> dict[str, list[tuple[str, str, str]]]:
        return {k: list(v) for k, v in self.executor.work_log.items()}

    # ---- reelfarm.v1.FilmService: one method per RPC, bound below the class ---------

    def Check(self, request):  # noqa: N802 - grpc.health.v1.Health
        return self.rpc.health(request)

    # ---- films (Python callers) -------------------------------------------------------

    def resolve(self, storyboard: dict) -> Film:
        """Validate a storyboard for the model it names, or the default one (raises
        SpecError, or ModelNotServed: a FailedPrecondition naming the served models)."""
        board = parse_storyboard(storyboard)
        model = board.model if "model" in board.model_fields_set else next(iter(self.sources))
        if model not in self.sources:
            raise ModelNotServed(model, list(self.sources))
        film = resolve_film(board, profile_for(self.sources[model].family), model=model)
        errors = self._edge_checks(film)
        if errors:
            raise SpecError(errors)
        return film

    async def create_film(self, storyboard: dict, tenant: str = "default", request_id: str = "",
                          priority: int = 50) -> FilmInfo:
        film = self.resolve(storyboard)
        return await asyncio.to_thread(self.director.create_film, film, tenant=tenant,
                                       request_id=request_id, priority=priority)

    async def get_film(self, film_id: str, tenant: str = "default") -> FilmInfo:
        return self.director.get_film(film_id, tenant)

    async def list_films(self, tenant: str = "default", state: FilmState | None = None,
                         page_size: int = 50, start: int = 0
                         ) -> tuple[list[FilmInfo], int | None]:
        return self.director.list_films(tenant, state, page_size, start)

    async def cancel_film(self, film_id: str, tenant: str = "default") -> FilmInfo:
        return await asyncio.to_thread(self.director.cancel_film, film_id, tenant)

    async def watch(self, film_id: str, tenant: str = "default", after: int = 0
                    ) -> AsyncIterator[FilmEvent]:
        events = self.director.watch(film_id, tenant, after)
        while (event := await asyncio.to_thread(next, events, None)) is not None:
            yield event

    async def stream_frames(self, film_id: str, tenant: str = "default", scene_id: str = "",
                            index: int = 0) -> AsyncIterator[tuple[str, int, int, bytes]]:
        """(scene id, frame index, film frame index, PNG bytes) in film order."""
        frames = self.director.frames(film_id, tenant, scene_id, index)
        while (f := await asyncio.to_thread(next, frames, None)) is not None:
            yield f.scene_id, f.index, f.film_index, f.path.read_bytes()


def _authenticator(tokens_file: str | None) -> Authenticator:
    """Tokens come from a file (a mounted Secret in Kubernetes); without one the API is
    open, which is only sensible on a private test cluster."""
    if tokens_file is None:
        import logging

        logging.getLogger("reelfarm.ingress").warning(
            "auth: OPEN - no tokens_file configured; every caller is tenant 'default'")
        return Authenticator()
    return Authenticator.from_file(tokens_file)


def _ingress_method(rpc: Rpc) -> Callable:
    """DirectorServer's method for `rpc` (Serve's gRPC proxy calls it by the RPC's name;
    a streaming RPC must be a generator; a client-streaming one a coroutine that Serve
    hands the request stream)."""
    if rpc.client_streaming:
        async def client_stream(self: DirectorServer, request_stream, grpc_context):
            return await self.rpc.client_stream(getattr(self.rpc.api, rpc.method),
                                                request_stream, grpc_context, rpc.response())
        return client_stream
    if not rpc.streaming:
        def unary(self: DirectorServer, request, grpc_context):
            return self.rpc.unary(getattr(self.rpc.api, rpc.method), request, grpc_context,
                                  rpc.response())
        return unary

    def stream(self: DirectorServer, request, grpc_context):
        yield from self.rpc.stream(getattr(self.rpc.api, rpc.method), request, grpc_context)
    return stream


bind_rpcs(DirectorServer, _ingress_method)
