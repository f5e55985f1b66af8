"""The embedded farm: scheduler, in-process executor and torch workers in one process.

    submit(film) ─> EngineCore(Scheduler, InlineExecutor(TorchWorker...)) ─> FrameStream
                    run() steps until every film is finished (call it from a thread
                    while you read the streams, or after, for a batch render)

`workers="split"` gives each expert its own worker (and the text encoder and VAE their
own), exactly as the cluster does, still in one process; "single" is one worker that
holds everything (the fastest way to render on one device); "devices" is one worker per
device of a comma-separated `device` ("cuda:0,cuda:1,..."), each holding everything:
with `config=SchedulerConfig(gangs=GangPolicy())` idle devices form gangs inside a
segment (CFG / sequence parallel), meeting at a loopback rendezvous store.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import torch

from farm.director.director import Director, DirectorConfig
from farm.engine.core import EngineCore
from farm.engine.executor import InlineExecutor
from farm.model.loader import ModelSource, resolve_model
from farm.model.worker import TorchWorker
from farm.observe.instruments import FarmMetrics
from farm.plan.film import FilmPlan, plan_film
from farm.sched.config import SchedulerConfig
from farm.sched.output import Event, FilmState, FilmStateChanged, WorkerSpec
from farm.sched.scheduler import Scheduler
from farm.spec.film import Film
from farm.spec.profiles import profile_for
from farm.stitch.stream import FrameRouter, FrameStream


def local_director(model: str, artifacts: str | Path, *, db: str | None = None,
                   device: str = "cpu", dtype: torch.dtype = torch.float32,
                   workers: str = "single", config: SchedulerConfig | None = None,
                   metrics: FarmMetrics | None = None, **limits: int) -> Director:
    """A Director over the embedded farm (the `serve --local` runtime).

    `artifacts`: folder of frame archives and (fsspec) checkpoints; `db`: a SQLAlchemy
    URL of the job store. With a db, phase handoffs are checkpointed and films survive a
    restart of the process.
    """
    from farm.store.jobs import JobStore

    store = JobStore(db).migrate() if db else None
    farm = LocalFarm(model, device=device, dtype=dtype, workers=workers, config=config,
                     checkpoints=str(artifacts) if store is not None else None)
    return Director(farm.engine, farm.router, DirectorConfig(Path(artifacts), **limits),
                    store=store, metrics=metrics)


class LocalFarm:
    def __init__(self, model: str | ModelSource, *, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, workers: str = "single",
                 config: SchedulerConfig | None = None, checkpoints: str | None = None):
        """`checkpoints`: an fsspec URL where every phase output is also saved."""
        self.source = model if isinstance(model, ModelSource) else resolve_model(model)
        self.router = FrameRouter()
        self.plans: dict[str, FilmPlan] = {}
        self._ids = itertools.count(1)
        pool = _workers(self.source, workers, device, dtype)
        store = codec = None
        if checkpoints is not None:
            from farm.model.solver import HandoffCodec
            from farm.store.artifacts import ArtifactStore

            store, codec = ArtifactStore(checkpoints), HandoffCodec()
        rendezvous = None
        if config is not None and config.gangs is not None:
            from farm.model.gang import StoreServer

            rendezvous = StoreServer("127.0.0.1")
        self.executor = InlineExecutor({wid: w for wid, (w, _) in pool.items()}, self.router,
                                       checkpoints=store, codec=codec, rendezvous=rendezvous)
        self.engine = EngineCore(Scheduler(config), self.executor)
        for wid, (_, holds) in pool.items():
            self.engine.add_worker(WorkerSpec(wid, holds, slots=1))

    def submit(self, film: Film, film_id: str | None = None, **kwargs: object) -> tuple[str, FrameStream]:
        if film.profile.family != self.source.family:
            raise ValueError(f"this farm serves {self.source.family}; the film needs {film.profile.family}")
        film_id = film_id or f"film-{next(self._ids)}"
        plan = plan_film(film)
        stream = FrameStream([(s.id, s.num_frames) for s in film.scenes])
        self.plans[film_id] = plan
        self.router.streams[film_id] = stream
        self.engine.add_film(film_id, plan, **kwargs)
        return film_id, stream

    def run(self, on_events: Callable[[list[Event]], None] | None = None) -> None:
        """Step until every film is finished; closes the streams of films that failed."""
        def handle(events: list[Event]) -> None:
            for e in events:
                if isinstance(e, FilmStateChanged) and e.state in (FilmState.FAILED, FilmState.CANCELLED):
                    self.router.streams[e.film_id].close(f"film {e.state.value}: {e.reason}")
            if on_events is not None:
                on_events(events)
        try:
            self.engine.run(handle)
        except BaseException as exc:
            for stream in self.router.streams.values():
                stream.close(f"engine stopped: {exc}")
            raise


def _workers(source: ModelSource, mode: str, device: str,
             dtype: torch.dtype) -> dict[str, tuple[TorchWorker, frozenset[str]]]:
    experts = profile_for(source.family).experts
    if mode == "single":
        return {"local": (TorchWorker(source, device, dtype), frozenset({"text", "vae", *experts}))}
    if mode == "split":
        pool = {"text": (TorchWorker(source, device, dtype), frozenset({"text"})),
                "vae": (TorchWorker(source, device, dtype), frozenset({"vae"}))}
        for e in experts:
            pool[f"expert-{e}"] = (TorchWorker(source, device, dtype), frozenset({e}))
        return pool
    if mode == "devices":
        holds = frozenset({"text", "vae", *experts})
        return {f"dev{i}-{d}": (TorchWorker(source, d, dtype), holds)
                for i, d in enumerate(device.split(","))}
    raise ValueError(f"workers must be 'single', 'split' or 'devices', got {mode!r}")
