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

A farm serves one model or several (`reelfarm serve --local` serves every built-in one):
each model gets its own workers, advertising "<model>/<part>" (farm.sched.placement.Need),
so a film runs only on workers holding its own model's weights, even when two models are
one family ("toy" and "tiny"). Workers load weights the first time a film needs them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from farm.director.delivery import DeliveryMaker
from farm.director.director import Director, DirectorConfig
from farm.engine.core import EngineCore
from farm.engine.executor import InlineExecutor
from farm.model.loader import ModelSource, resolve_model
from farm.model.worker import TorchWorker
from farm.observe.instruments import FarmMetrics
from farm.plan.film import FilmPlan, plan_film
from farm.sched.config import SchedulerConfig
from farm.sched.output import Event, FilmState, FilmStateChanged, WorkerSpec, model_parts
from farm.sched.scheduler import Scheduler
from farm.spec.film import Film
from farm.spec.profiles import profile_for
from farm.stitch.stream import FrameRouter, FrameStream

# What a farm serves: one model or several, each a name films give (a built-in or a
# model folder) or an already resolved source.
Models = str | ModelSource | Sequence[str | ModelSource]


def local_director(models: Models, artifacts: str | Path, *, db: str | None = None,
                   device: str = "cpu", dtype: torch.dtype = torch.float32,
                   workers: str = "single", config: SchedulerConfig | None = None,
                   metrics: FarmMetrics | None = None, delivery: DeliveryMaker | None = None,
                   **limits: int) -> Director:
    """A Director over the embedded farm (the `serve --local` runtime) serving `models`.

    `artifacts`: folder of frame archives and (fsspec) checkpoints; `db`: a SQLAlchemy
    URL of the job store. With a db, phase handoffs are checkpointed and films survive a
    restart of the process. `delivery`: what labels and signs each film's deliverables.
    """
    from farm.store.jobs import JobStore

    store = JobStore(db).migrate() if db else None
    farm = LocalFarm(models, device=device, dtype=dtype, workers=workers, config=config,
                     checkpoints=str(artifacts) if store is not None else None)
    return Director(farm.engine, farm.router,
                    DirectorConfig(Path(artifacts), delivery=delivery,
                                   models=tuple(farm.sources), **limits),
                    store=store, metrics=metrics)


class LocalFarm:
    def __init__(self, models: Models, *, device: str = "cpu",
                 dtype: torch.dtype = torch.float32, workers: str = "single",
                 config: SchedulerConfig | None = None, checkpoints: str | None = None):
        """`models`: what the farm serves, each by the name films give (`Film.model`): a
        built-in name or a model folder. `checkpoints`: an fsspec URL where every phase
        output is also saved."""
        self.sources = served_models(models)
        self.router = FrameRouter()
        self.plans: dict[str, FilmPlan] = {}
        self._ids = itertools.count(1)
        pool: dict[str, tuple[TorchWorker, frozenset[str]]] = {}
        for label, (name, source) in zip(_labels(self.sources), self.sources.items(), strict=True):
            pool.update(_workers(name, source, workers, device, dtype, label))
        self.executor = _executor({wid: w for wid, (w, _) in pool.items()}, self.router, config,
                                  checkpoints)
        self.engine = EngineCore(Scheduler(config), self.executor)
        for wid, (_, holds) in pool.items():
            self.engine.add_worker(WorkerSpec(wid, holds, slots=1))

    @property
    def source(self) -> ModelSource:
        """The first model served (the only one, for a farm built for one film's model)."""
        return next(iter(self.sources.values()))

    def submit(self, film: Film, film_id: str | None = None,
               **kwargs: object) -> tuple[str, FrameStream]:
        if film.model not in self.sources:
            raise ValueError(f"this farm serves {', '.join(self.sources)}; the film needs "
                             f"model {film.model!r}")
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
                if (isinstance(e, FilmStateChanged)
                        and e.state in (FilmState.FAILED, FilmState.CANCELLED)):
                    self.router.streams[e.film_id].close(f"film {e.state.value}: {e.reason}")
            if on_events is not None:
                on_events(events)
        try:
            self.engine.run(handle)
        except BaseException as exc:
            for stream in self.router.streams.values():
                stream.close(f"engine stopped: {exc}")
            raise


def _executor(workers: dict[str, TorchWorker], router: FrameRouter,
              config: SchedulerConfig | None, checkpoints: str | None) -> InlineExecutor:
    store = codec = None
    if checkpoints is not None:
        from farm.model.solver import HandoffCodec
        from farm.store.artifacts import ArtifactStore

        store, codec = ArtifactStore(checkpoints), HandoffCodec()
    rendezvous = None
    if config is not None and config.gangs is not None:
        from farm.model.gang import StoreServer

        rendezvous = StoreServer("127.0.0.1")
    return InlineExecutor(workers, router, checkpoints=store, codec=codec, rendezvous=rendezvous)


def served_models(models: Models) -> dict[str, ModelSource]:
    """Name films use -> source, resolved (ValueError naming the built-ins if unknown)."""
    items = [models] if isinstance(models, (str, ModelSource)) else list(models)
    if not items:
        raise ValueError("a farm must serve at least one model")
    sources = [m if isinstance(m, ModelSource) else resolve_model(m) for m in items]
    return {s.ref: s for s in sources}


def _labels(sources: dict[str, ModelSource]) -> list[str]:
    """Worker id prefixes: none for a farm of one model (ids as they always were), else the
    model's name (a folder's base name), numbered if two folders share one."""
    if len(sources) == 1:
        return [""]
    names = [Path(ref).name if "/" in ref else ref for ref in sources]
    return [f"{n}:" if names.count(n) == 1 else f"{n}#{i}:" for i, n in enumerate(names)]


def _workers(model: str, source: ModelSource, mode: str, device: str, dtype: torch.dtype,
             label: str = "") -> dict[str, tuple[TorchWorker, frozenset[str]]]:
    """The workers of one model: each advertises its parts as "<model>/<part>"."""
    profile = profile_for(source.family)
    experts, parts = profile.experts, profile.parts

    def holds(*parts: str) -> frozenset[str]:
        return model_parts(model, parts)

    if mode == "single":
        return {f"{label}local": (TorchWorker(source, device, dtype),
                                  holds(*parts))}
    if mode == "split":
        pool = {f"{label}text": (TorchWorker(source, device, dtype), holds("text")),
                f"{label}vae": (TorchWorker(source, device, dtype), holds("vae"))}
        for e in experts:
            pool[f"{label}expert-{e}"] = (TorchWorker(source, device, dtype), holds(e))
        return pool
    if mode == "devices":
        return {f"{label}dev{i}-{d}": (TorchWorker(source, d, dtype),
                                       holds(*parts))
                for i, d in enumerate(device.split(","))}
    raise ValueError(f"workers must be 'single', 'split' or 'devices', got {mode!r}")
