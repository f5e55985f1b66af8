"""One film as the director tracks it: record, progress, event log and watchers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from farm.director.archive import FrameArchive
from farm.director.records import FilmEvent, FilmInfo, SceneInfo
from farm.plan.film import FilmPlan
from farm.sched.output import (
    Event,
    FilmProgress,
    FilmState,
    FilmStateChanged,
    FramesDecoded,
    PhaseFinished,
    TaskRetried,
)
from farm.spec.film import Film


class Entry:
    def __init__(self, film_id: str, film: Film, plan: FilmPlan, tenant: str, request_id: str,
                 priority: int, now: float, archive: FrameArchive, *,
                 state: FilmState = FilmState.QUEUED, reason: str = "",
                 events: list[FilmEvent] | None = None):
        self.film_id, self.film, self.plan = film_id, film, plan
        self.tenant, self.request_id, self.priority = tenant, request_id, priority
        self.create_time = self.update_time = now
        self.archive = archive
        self.state = state
        self.reason = reason
        # Called with every new event (the director persists them).
        self.on_publish: Callable[[FilmEvent], None] = lambda event: None
        self.progress: FilmProgress | None = None
        self.first_frame_time: float | None = None
        # The scheduler finished every decode; SUCCEEDED waits for the archive.
        self.denoised = False
        self.events: list[FilmEvent] = list(events or [])
        # Phases done as the film's log last said (a film read back after a restart: a
        # finished one never reaches the scheduler again, whose progress counts them).
        self.logged_phases = self.events[-1].phases_done if self.events else 0
        self._cv = threading.Condition()

    @property
    def phases_done(self) -> int:
        return self.progress.phases_done if self.progress else self.logged_phases

    def info(self) -> FilmInfo:
        p = self.progress
        phases_total = (p.phases_total if p else
                        sum(len(s.units) for s in self.plan.scenes) * len(self.plan.phases))
        written = self.archive.written
        scenes, offset = [], 0
        for s in self.film.scenes:
            scenes.append(SceneInfo(s.id, s.num_frames,
                                    max(0, min(s.num_frames, written - offset))))
            offset += s.num_frames
        ttff = None if self.first_frame_time is None else self.first_frame_time - self.create_time
        return FilmInfo(self.film_id, self.tenant, self.film.title, self.film.model, self.state,
                        self.reason, self.priority, self.request_id, self.create_time,
                        self.update_time, tuple(scenes), self.phases_done, phases_total,
                        written, self.film.num_frames, ttff, self.film)

    # ---- events ---------------------------------------------------------------------------

    def publish(self, now: float, kind: str, message: str, **fields: object) -> None:
        with self._cv:
            self.update_time = now
            event = FilmEvent(len(self.events) + 1, now, kind, self.state, message,
                              self.phases_done, self.archive.written, **fields)
            self.events.append(event)
            self.on_publish(event)  # durable before any watcher sees it
            self._cv.notify_all()

    def set_state(self, now: float, state: FilmState, reason: str) -> None:
        with self._cv:
            if self.state.is_final or self.state == state:
                return
            self.state, self.reason = state, reason
        self.publish(now, "state", reason or state.value)

    def reopen(self, now: float, why: str) -> None:
        """A finished film runs again (re-render, retry); watchers see it continue."""
        with self._cv:
            self.state, self.reason, self.denoised = FilmState.RUNNING, "", False
        self.publish(now, "state", why)

    def on_event(self, now: float, e: Event) -> None:
        experts = self.film.profile.experts
        if isinstance(e, FilmStateChanged):
            self.set_state(now, e.state, e.reason)
        elif isinstance(e, PhaseFinished):
            self.publish(now, "phase",
                         f"{e.unit_id} phase {e.phase_index} ({experts[e.expert]}) done",
                         scene_id=e.unit_id.split("/")[0], unit_id=e.unit_id,
                         phase_index=e.phase_index, expert=experts[e.expert],
                         worker_ids=e.worker_ids, duration=e.duration, num_steps=e.num_steps,
                         output_bytes=e.output_bytes)
        elif isinstance(e, FramesDecoded):
            self.publish(now, "frames",
                         f"{e.scene_id} frames {e.frame_start}..{e.frame_stop - 1} decoded",
                         scene_id=e.scene_id, frame_start=e.frame_start, frame_stop=e.frame_stop,
                         duration=e.duration)
        elif isinstance(e, TaskRetried):
            self.publish(now, "retry", f"{e.task_id} failed ({e.reason}); retry {e.attempt}",
                         worker_ids=(e.worker_id,) if e.worker_id else ())

    def wake(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def wait_final(self, timeout: float | None) -> bool:
        return self.wait_state(lambda state: state.is_final, timeout)

    def wait_state(self, ok: Callable[[FilmState], bool], timeout: float | None) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: ok(self.state), timeout)

    def follow(self, after: int, timeout: float | None) -> Iterator[FilmEvent]:
        seen = after
        while True:
            with self._cv:
                ok = self._cv.wait_for(lambda n=seen: len(self.events) > n or self.state.is_final,
                                       timeout)
                if not ok:
                    raise TimeoutError(f"no event after #{seen} within {timeout} s")
                batch = self.events[seen:]
                final = self.state.is_final
            yield from batch
            seen += len(batch)
            if final and seen == len(self.events):
                return
