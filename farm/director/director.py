"""Director: film records, the engine loop, events and frame archives behind one API.

    API threads ──create/cancel/pause/.../watch/frames──> Director
                                                          │ commands (queue)
    engine thread: apply commands -> EngineCore.step() -> events -> records, watchers
    archive threads (one per film): ordered frames -> PNGs (+ mp4 once complete) -> readers
    job store (optional): films, events, executions, checkpoints; read back on start

The engine is owned by one thread; API calls never touch the scheduler directly, they
queue commands (farm.director.commands), so each takes effect at a phase boundary.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from farm.director import commands, controls, fleet
from farm.director.archive import ArchivedFrame, FrameArchive
from farm.director.commands import Add, Cancel, Command
from farm.director.delivery import DeliveryMaker
from farm.director.entry import Entry
from farm.director.errors import (
    FailedPrecondition,
    FilmNotFound,
    PermissionDenied,
    ResourceExhausted,
)
from farm.director.persist import Recorder, log_event
from farm.director.records import FilmEvent, FilmInfo
from farm.director.restore import restore
from farm.engine.core import EngineCore, EngineStalled
from farm.media.provenance import label_tags
from farm.observe.instruments import FarmMetrics
from farm.plan.film import plan_film
from farm.sched.fairness import check_priority
from farm.sched.output import Event, FilmState, FilmStateChanged
from farm.spec.film import Film
from farm.stitch.stream import FrameRouter
from farm.store.jobs import JobStore


@dataclass(frozen=True, slots=True)
class DirectorConfig:
    # Root folder of film archives: <artifacts>/films/<film id>/...
    artifacts: Path
    # Unfinished films accepted at once, in all and per tenant (RESOURCE_EXHAUSTED beyond).
    max_unfinished_films: int = 100
    max_unfinished_per_tenant: int = 20
    # Frames not yet delivered, summed over a tenant's unfinished films.
    max_queued_frames_per_tenant: int = 100_000
    # What labels, signs and completes each film's deliverables (farm.director.delivery);
    # None: plain PNGs and mp4 (tests of the director alone).
    delivery: DeliveryMaker | None = None
    # The models this farm serves (Film.model names): a film of another one, restored
    # after a restart or retried, fails with the reason instead of waiting for workers
    # that never come. Empty: not checked (a director over a bare engine, in tests).
    models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if min(self.max_unfinished_films, self.max_unfinished_per_tenant,
               self.max_queued_frames_per_tenant) < 1:
            raise ValueError("film limits must be >= 1")


class Director:
    def __init__(self, engine: EngineCore, router: FrameRouter, config: DirectorConfig,
                 clock: Callable[[], float] = time.time, store: JobStore | None = None,
                 metrics: FarmMetrics | None = None):
        """With a `store`, films survive a restart: start() reads them back and resumes
        every unfinished one from its last completed phases."""
        self.engine, self.router, self.config, self.clock = engine, router, config, clock
        self.store = store
        self._recorder = Recorder(store) if store is not None else None
        self.metrics = metrics
        self._sampled = 0.0
        # Workers and pools as the engine thread last saw them (for monitors): twice a
        # second, and whenever work is handed out (before an in-process executor runs it).
        self.fleet = fleet.Fleet(clock())
        engine.on_dispatch = lambda output: self._snapshot_fleet()
        # Where phase handoffs are checkpointed (cleaned once a film succeeds).
        self.checkpoints = engine.executor.checkpoints
        self._lock = threading.RLock()
        self._films: dict[str, Entry] = {}
        self._requests: dict[tuple[str, str], str] = {}
        # Commands for the engine thread, each with the event it sets once applied.
        self._commands: queue.Queue[tuple[Command, threading.Event] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> Director:
        if self.store is not None:
            restore(self)
        self._thread = threading.Thread(target=self._loop, name="director-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._commands.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        for entry in self._films.values():
            if not entry.state.is_final:  # the film is not over: a restart resumes it
                entry.archive.stream.close("director stopped")
        for entry in self._films.values():
            entry.archive.join(timeout)
        if self.store is not None:
            self.store.close()

    # ---- API ----------------------------------------------------------------------------

    def create_film(self, film: Film, *, tenant: str, request_id: str = "",
                    priority: int = 50) -> FilmInfo:
        """Accept a validated film; idempotent by (tenant, request_id)."""
        check_priority(priority)
        with self._lock:
            if request_id and (tenant, request_id) in self._requests:
                return self._films[self._requests[(tenant, request_id)]].info()
            self._check_quota(tenant, film.num_frames)
            film_id = uuid.uuid4().hex[:12]
            entry = Entry(film_id, film, plan_film(film), tenant, request_id, priority,
                          self.clock(), self._archive(film_id, film, tenant))
            self.adopt(entry)
            if self._recorder is not None:
                self._recorder.film_created(entry)
        self.start_archive(entry)
        entry.publish(self.clock(), "state", "film accepted")
        self.queue(Add(entry))
        return entry.info()

    def adopt(self, entry: Entry) -> None:
        """Track a film (new, or read back from the store) and persist its events."""
        with self._lock:
            self._films[entry.film_id] = entry
            if entry.request_id:
                self._requests[(entry.tenant, entry.request_id)] = entry.film_id
        entry.on_publish = lambda e: self._published(entry, e)

    def start_archive(self, entry: Entry) -> None:
        self.router.streams[entry.film_id] = entry.archive.stream
        entry.archive.start(on_first_frame=lambda: self._first_frame(entry),
                            on_done=lambda error: self._archive_done(entry, error),
                            on_frame=self.metrics.frame_delivered if self.metrics else None)

    def unservable(self, film: Film) -> str | None:
        """Why this farm cannot render `film` (its model is not served), or None."""
        served = self.config.models
        if not served or film.model in served:
            return None
        return (f"model {film.model!r} is not served by this farm (it serves "
                f"{', '.join(served)}); serve it, then retry the film")

    def queue(self, cmd: Command) -> threading.Event:
        """Hand `cmd` to the engine thread; the event is set once it has been applied."""
        applied = threading.Event()
        self._commands.put((cmd, applied))
        return applied

    def get_film(self, film_id: str, tenant: str) -> FilmInfo:
        return self._entry(film_id, tenant).info()

    def list_films(self, tenant: str, state: FilmState | None = None, page_size: int = 50,
                   start: int = 0) -> tuple[list[FilmInfo], int | None]:
        """The tenant's films [start, start + page_size), in creation order, and where the
        next page starts (None: this was the last). Page tokens are the API's
        (farm.api.paging)."""
        if page_size < 1 or start < 0:
            raise ValueError(f"page_size must be >= 1 and start >= 0, got {page_size}, {start}")
        with self._lock:
            mine = [e for e in self._films.values() if e.tenant == tenant
                    and (state is None or e.state == state)]
        page = mine[start:start + page_size]
        more = start + page_size < len(mine)
        return [e.info() for e in page], start + page_size if more else None

    def cancel_film(self, film_id: str, tenant: str) -> FilmInfo:
        entry = self._entry(film_id, tenant)
        if entry.state.is_final:
            raise FailedPrecondition(f"film {film_id} is already {entry.state.value}")
        self.queue(Cancel(entry))
        entry.wait_final(timeout=30.0)
        return entry.info()

    def pause_film(self, film_id: str, tenant: str) -> FilmInfo:
        return controls.pause(self, self._entry(film_id, tenant))

    def resume_film(self, film_id: str, tenant: str) -> FilmInfo:
        return controls.resume(self, self._entry(film_id, tenant))

    def set_priority(self, film_id: str, tenant: str, priority: int) -> FilmInfo:
        return controls.set_priority(self, self._entry(film_id, tenant), priority)

    def retry_film(self, film_id: str, tenant: str) -> FilmInfo:
        return controls.retry(self, self._entry(film_id, tenant))

    def rerender(self, film_id: str, tenant: str, scene_id: str, first: int,
                 last: int) -> FilmInfo:
        """Compute frames first..last (0-based, inclusive) of a scene again."""
        return controls.rerender(self, self._entry(film_id, tenant), scene_id, first, last)

    def executions(self, film_id: str, tenant: str) -> list:
        self._entry(film_id, tenant)
        return self.store.executions(film_id) if self.store is not None else []

    def watch(self, film_id: str, tenant: str, after: int = 0,
              timeout: float | None = None) -> Iterator[FilmEvent]:
        """Events with seq > after, following the film until it ends."""
        return self._entry(film_id, tenant).follow(after, timeout)

    def frames(self, film_id: str, tenant: str, scene_id: str = "", index: int = 0,
               timeout: float | None = None) -> Iterator[ArchivedFrame]:
        """Frames in film order from (scene, index) on; resumable after a disconnect."""
        entry = self._entry(film_id, tenant)
        start = entry.archive.position(scene_id, index) if scene_id else index
        return entry.archive.read(start, timeout)

    def mp4_path(self, film_id: str, tenant: str) -> Path:
        entry = self._entry(film_id, tenant)
        if entry.state != FilmState.SUCCEEDED:
            raise FailedPrecondition(f"film {film_id} is {entry.state.value}; its mp4 exists "
                                     "once it has SUCCEEDED")
        return entry.archive.mp4_path

    # ---- internals ----------------------------------------------------------------------

    def _entry(self, film_id: str, tenant: str) -> Entry:
        with self._lock:
            entry = self._films.get(film_id)
        if entry is None:
            raise FilmNotFound(f"no film films/{film_id}")
        if entry.tenant != tenant:
            raise PermissionDenied(f"films/{film_id} belongs to another tenant")
        return entry

    def _check_quota(self, tenant: str, frames: int = 0) -> None:
        live = [e for e in self._films.values() if not e.state.is_final]
        if len(live) >= self.config.max_unfinished_films:
            raise ResourceExhausted(f"the farm has {len(live)} unfinished films, its limit; "
                                    "retry when some have finished")
        mine = [e for e in live if e.tenant == tenant]
        if len(mine) >= self.config.max_unfinished_per_tenant:
            raise ResourceExhausted(f"tenant {tenant!r} has {len(mine)} unfinished films, "
                                    "its quota")
        queued = sum(e.film.num_frames - e.archive.written for e in mine)
        if queued + frames > self.config.max_queued_frames_per_tenant:
            raise ResourceExhausted(
                f"tenant {tenant!r} has {queued} frames queued; {frames} more would exceed its "
                f"quota of {self.config.max_queued_frames_per_tenant}")

    def _archive(self, film_id: str, film: Film, tenant: str) -> FrameArchive:
        make = self.config.delivery
        return FrameArchive(self.config.artifacts / "films" / film_id,
                            [(s.id, s.num_frames) for s in film.scenes], film.fps, film.width,
                            film.height, {"title": film.title, **label_tags("mp4")},
                            make(film_id, film, tenant) if make is not None else None,
                            conform=film.delivery)

    def _loop(self) -> None:
        idle = True
        while not self._stop.is_set():
            # Nothing moved last time (only paused films, or waiting for workers): wait for
            # a command instead of spinning; each wait is short, so new work starts soon.
            self._apply_commands(block=idle)
            if not self.engine.scheduler.has_unfinished_films():
                self._forget_finished()
                self.engine.apply_fleet()  # no film to lose: workers come and go quietly
                self.sample_metrics()
                idle = True
                continue
            try:
                events = self.engine.step()
            except EngineStalled as exc:
                events = [e for fid in self.engine.scheduler.film_ids()
                          for e in self.engine.scheduler.cancel_film(fid, f"stalled: {exc}")]
            self._record(events)
            self._on_events(events)
            self.sample_metrics()
            idle = not events and self.engine.scheduler.num_running_tasks() == 0

    def sample_metrics(self, force: bool = False) -> None:
        """Gauges (pools, films by state) and the scheduler's cost, twice a second; also
        the fleet snapshot monitors read (engine thread only: it reads the scheduler)."""
        now = time.monotonic()
        if now - self._sampled < 0.5 and not force:
            return
        self._sampled = now
        self._snapshot_fleet()
        if self.metrics is None:
            return
        with self._lock:
            states = [e.state for e in self._films.values()]
        self.metrics.pools(self.fleet.pools)
        self.metrics.films_by_state(states)
        self.metrics.decision(self.engine.last_decision_seconds)

    def _snapshot_fleet(self) -> None:
        with self._lock:
            plans = [e.plan for e in self._films.values() if not e.state.is_final]
        self.fleet = fleet.snapshot(self.engine.scheduler, plans, self.clock())

    def _record(self, events: list[Event]) -> None:
        """Durable before anyone hears of it: a step's render log and checkpoints."""
        saved = self.engine.executor.take_checkpoints()
        if self._recorder is None:
            return
        experts = {fid: e.film.profile.experts for fid in {ev.film_id for ev in events}
                   if (e := self._films.get(fid)) is not None}
        self._recorder.step(events, experts, saved, self.clock())

    def _forget_finished(self) -> None:
        """Finished films leave the scheduler (their records stay here and in the store)."""
        sched = self.engine.scheduler
        for fid in sched.film_ids():
            if sched.progress(fid).state.is_final and sched.num_running_tasks() == 0:
                sched.forget_film(fid)

    def _apply_commands(self, block: bool) -> None:
        try:
            cmd = self._commands.get(timeout=0.2) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while cmd is not None:
            cmd, applied = cmd
            try:
                self._on_events(commands.apply(self.engine, cmd))
            except ValueError as exc:  # e.g. retry of a film that is not FAILED any more
                cmd.entry.publish(self.clock(), "error", f"{cmd.verb} refused: {exc}")
            finally:
                applied.set()
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                cmd = None

    def _on_events(self, events: list[Event]) -> None:
        now = self.clock()
        if self.metrics is not None:
            for fid in {e.film_id for e in events}:
                entry = self._films.get(fid)
                if entry is not None:
                    self.metrics.on_events([e for e in events if e.film_id == fid],
                                           entry.film.profile.experts)
        for e in events:
            entry = self._films.get(e.film_id)
            if entry is None:
                continue
            entry.progress = self.engine.scheduler.progress(e.film_id)
            if isinstance(e, FilmStateChanged) and e.state == FilmState.SUCCEEDED:
                entry.denoised = True  # SUCCEEDED once the archive has every frame, too
                self._maybe_succeed(entry)
                continue
            entry.on_event(now, e)  # state first: the archive thread reads it when it stops
            if isinstance(e, FilmStateChanged) and e.state.is_final:
                entry.archive.stream.close(f"film {e.state.value}: {e.reason}")

    def _published(self, entry: Entry, event: FilmEvent) -> None:
        """Every event of every film: persisted, logged with its ids, counted."""
        if self._recorder is not None:
            self._recorder.event(entry.film_id, event)
            if event.kind == "state":
                self._recorder.film_updated(entry)
        log_event(entry, event)
        if self.metrics is not None and event.kind == "state" and event.state.is_final:
            self.metrics.film_finished(event.state)

    def _first_frame(self, entry: Entry) -> None:
        if entry.first_frame_time is None:
            entry.first_frame_time = self.clock()
            if self.metrics is not None:
                self.metrics.first_frame(entry.first_frame_time - entry.create_time)
            if self._recorder is not None:
                self._recorder.film_updated(entry)

    def _maybe_succeed(self, entry: Entry) -> None:
        """Both done: the scheduler decoded everything and the archive wrote every frame."""
        archive = entry.archive
        if entry.denoised and archive.finished and archive.error is None \
                and archive.written == archive.total:
            entry.set_state(self.clock(), FilmState.SUCCEEDED,
                            "every frame delivered; film.mp4 written")
            if self.store is not None and self.checkpoints is not None and \
                entry.state == FilmState.SUCCEEDED:
                self.checkpoints.remove_film_handoffs(entry.film_id)  # done: free the space
                self.store.drop_checkpoints(entry.film_id)

    def _archive_done(self, entry: Entry, error: str | None) -> None:
        now = self.clock()
        if self._stop.is_set():
            return  # stopping: the archive ends with the process, the film does not
        if entry.state.is_final:
            entry.wake()
        elif error is None and entry.archive.written == entry.archive.total:
            self._maybe_succeed(entry)
        else:
            self.queue(Cancel(entry))
            entry.set_state(now, FilmState.FAILED, f"frame archive: {error}")

