"""Director: film records, the engine loop, events and frame archives behind one API.

    API threads ──create/cancel/get/list/watch/frames──> Director
                                                          │ commands (queue)
    engine thread: apply commands -> EngineCore.step() -> events -> records, watchers
    archive threads (one per film): ordered frames -> PNGs + mp4 -> readers

The engine is owned by one thread; API calls never touch the scheduler directly, they
queue commands, so a cancel takes effect at the next phase boundary.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from farm.director.archive import ArchivedFrame, FrameArchive
from farm.director.entry import Entry
from farm.director.errors import (
    FailedPrecondition,
    FilmNotFound,
    PermissionDenied,
    ResourceExhausted,
)
from farm.director.records import FilmEvent, FilmInfo
from farm.engine.core import EngineCore, EngineStalled
from farm.plan.film import plan_film
from farm.sched.output import Event, FilmState, FilmStateChanged
from farm.spec.film import Film
from farm.stitch.stream import FrameRouter


@dataclass(frozen=True, slots=True)
class DirectorConfig:
    # Root folder of film archives: <artifacts>/films/<film id>/...
    artifacts: Path
    # Unfinished films accepted at once, in all and per tenant (RESOURCE_EXHAUSTED beyond).
    max_unfinished_films: int = 100
    max_unfinished_per_tenant: int = 20

    def __post_init__(self) -> None:
        if self.max_unfinished_films < 1 or self.max_unfinished_per_tenant < 1:
            raise ValueError("film limits must be >= 1")


class Director:
    def __init__(self, engine: EngineCore, router: FrameRouter, config: DirectorConfig,
                 clock: Callable[[], float] = time.time):
        self.engine, self.router, self.config, self.clock = engine, router, config, clock
        self._lock = threading.RLock()
        self._films: dict[str, Entry] = {}
        self._requests: dict[tuple[str, str], str] = {}
        self._commands: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> Director:
        self._thread = threading.Thread(target=self._loop, name="director-engine", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._commands.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        for entry in self._films.values():
            if not entry.state.is_final:
                entry.archive.stream.close("director stopped")

    # ---- API ----------------------------------------------------------------------------

    def create_film(self, film: Film, *, tenant: str, request_id: str = "",
                    priority: int = 50) -> FilmInfo:
        """Accept a validated film; idempotent by (tenant, request_id)."""
        if not 0 <= priority <= 100:
            raise ValueError(f"priority must be in [0, 100], got {priority}")
        with self._lock:
            if request_id and (tenant, request_id) in self._requests:
                return self._films[self._requests[(tenant, request_id)]].info()
            self._check_quota(tenant)
            film_id = uuid.uuid4().hex[:12]
            entry = Entry(film_id, film, plan_film(film), tenant, request_id, priority,
                          self.clock(), self._archive(film_id, film))
            self._films[film_id] = entry
            if request_id:
                self._requests[(tenant, request_id)] = film_id
            self.router.streams[film_id] = entry.archive.stream
        entry.archive.start(on_first_frame=lambda: self._first_frame(entry),
                            on_done=lambda error: self._archive_done(entry, error))
        entry.publish(self.clock(), "state", "film accepted")
        self._commands.put(("add", entry))
        return entry.info()

    def get_film(self, film_id: str, tenant: str) -> FilmInfo:
        return self._entry(film_id, tenant).info()

    def list_films(self, tenant: str, state: FilmState | None = None, page_size: int = 50,
                   page_token: str = "") -> tuple[list[FilmInfo], str]:
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        start = _decode_token(page_token)
        with self._lock:
            mine = [e for e in self._films.values() if e.tenant == tenant
                    and (state is None or e.state == state)]
        page = mine[start:start + page_size]
        more = start + page_size < len(mine)
        return [e.info() for e in page], _encode_token(start + page_size) if more else ""

    def cancel_film(self, film_id: str, tenant: str) -> FilmInfo:
        entry = self._entry(film_id, tenant)
        if entry.state.is_final:
            raise FailedPrecondition(f"film {film_id} is already {entry.state.value}")
        self._commands.put(("cancel", entry))
        entry.wait_final(timeout=30.0)
        return entry.info()

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

    def _check_quota(self, tenant: str) -> None:
        live = [e for e in self._films.values() if not e.state.is_final]
        if len(live) >= self.config.max_unfinished_films:
            raise ResourceExhausted(f"the farm has {len(live)} unfinished films, its limit; "
                                    "retry when some have finished")
        mine = sum(1 for e in live if e.tenant == tenant)
        if mine >= self.config.max_unfinished_per_tenant:
            raise ResourceExhausted(f"tenant {tenant!r} has {mine} unfinished films, its quota")

    def _archive(self, film_id: str, film: Film) -> FrameArchive:
        return FrameArchive(self.config.artifacts / "films" / film_id,
                            [(s.id, s.num_frames) for s in film.scenes], film.fps, film.width,
                            film.height, {"title": film.title, "comment": "AI-generated with reelfarm"})

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = self.engine.scheduler.has_unfinished_films()
            self._apply_commands(block=not busy)
            if not self.engine.scheduler.has_unfinished_films():
                continue
            try:
                events = self.engine.step()
            except EngineStalled as exc:
                events = [e for fid in self.engine.scheduler.film_ids()
                          for e in self.engine.scheduler.cancel_film(fid, f"stalled: {exc}")]
            self._on_events(events)

    def _apply_commands(self, block: bool) -> None:
        try:
            cmd = self._commands.get(timeout=0.2) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while cmd is not None:
            kind, entry = cmd
            if kind == "add":
                self._on_events(self.engine.add_film(entry.film_id, entry.plan, priority=entry.priority,
                                                     tenant=entry.tenant))
            elif kind == "cancel":
                self._on_events(self.engine.scheduler.cancel_film(entry.film_id))
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                cmd = None

    def _on_events(self, events: list[Event]) -> None:
        now = self.clock()
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

    def _first_frame(self, entry: Entry) -> None:
        entry.first_frame_time = self.clock()

    def _maybe_succeed(self, entry: Entry) -> None:
        """Both done: the scheduler decoded everything and the archive wrote every frame."""
        archive = entry.archive
        if entry.denoised and archive.finished and archive.error is None \
                and archive.written == archive.total:
            entry.set_state(self.clock(), FilmState.SUCCEEDED,
                            "every frame delivered; film.mp4 written")

    def _archive_done(self, entry: Entry, error: str | None) -> None:
        now = self.clock()
        if entry.state.is_final:
            entry.wake()
        elif error is None and entry.archive.written == entry.archive.total:
            self._maybe_succeed(entry)
        else:
            self._commands.put(("cancel", entry))
            entry.set_state(now, FilmState.FAILED, f"frame archive: {error}")


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode()


def _decode_token(token: str) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
        if raw.startswith("o") and raw[1:].isdigit():
            return int(raw[1:])
    except (ValueError, UnicodeDecodeError):
        pass
    raise ValueError("page_token is not a token returned by a previous ListFilms call")
