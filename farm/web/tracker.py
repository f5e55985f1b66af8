"""Per-film progress samples and failures, read incrementally from the director's event
log (each call reads only the events since the last one), for ETAs and the pools page."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from farm.director.director import Director
from farm.director.records import FilmEvent
from farm.sched.output import FilmState
from farm.web import eta as eta_mod

# Samples kept per film (the rate only looks at the last few minutes of them).
MAX_SAMPLES = 512
MAX_FAILURES = 20


@dataclass
class Trace:
    seq: int = 0
    # (time, phases done) at each finished phase and (time, frames delivered) at each
    # decode, since the film last started running (a pause or a re-run starts afresh).
    phases: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    frames: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    # Failed attempts and the film's own failure, newest last.
    failures: deque = field(default_factory=lambda: deque(maxlen=MAX_FAILURES))

    def add(self, e: FilmEvent) -> None:
        self.seq = e.seq
        if e.kind == "state":
            self.phases.clear()
            self.frames.clear()
            if e.state == FilmState.RUNNING:  # the anchor of the new run's rate
                self.phases.append((e.time, e.phases_done))
                self.frames.append((e.time, e.frames_done))
            elif e.state == FilmState.FAILED:
                self.failures.append({"time": e.time, "message": e.message, "worker_ids": []})
        elif e.kind == "phase":
            self.phases.append((e.time, e.phases_done))
        elif e.kind == "frames":
            self.frames.append((e.time, e.frames_done))
        elif e.kind == "retry":
            self.failures.append({"time": e.time, "message": e.message,
                                  "worker_ids": list(e.worker_ids)})


class Tracker:
    def __init__(self, director: Director):
        self.director = director
        self._lock = threading.Lock()
        self._traces: dict[str, Trace] = {}

    def update(self, film_id: str, tenant: str) -> Trace:
        """The film's trace with every event so far (the caller checked the tenant; the
        director checks it again)."""
        with self._lock:
            trace = self._traces.setdefault(film_id, Trace())
            try:
                for e in self.director.watch(film_id, tenant, trace.seq, timeout=0):
                    trace.add(e)
            except TimeoutError:
                pass  # every event so far is in; the film goes on
            return trace

    def eta(self, film_id: str, tenant: str, state: str, phases_left: int, frames_left: int,
            now: float) -> float | None:
        trace = self.update(film_id, tenant)
        with self._lock:
            phases, frames = list(trace.phases), list(trace.frames)
        return eta_mod.eta(state == FilmState.RUNNING.value, phases_left, frames_left,
                           phases, frames, now)

    def failures(self, film_id: str, tenant: str) -> list[dict]:
        trace = self.update(film_id, tenant)
        with self._lock:
            return list(trace.failures)
