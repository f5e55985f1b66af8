"""FarmMetrics: the instruments of farm.observe.metrics, updated from what the director sees."""

from __future__ import annotations

from collections import Counter as Tally

from farm.observe.metrics import SECONDS_BUCKETS, STEP_BUCKETS, Sink, failure_label
from farm.sched.output import (
    Event,
    FilmState,
    FilmStateChanged,
    PhaseFinished,
    PoolStats,
    TaskRetried,
)


class FarmMetrics:
    def __init__(self, sink: Sink):
        self.sink = sink
        counter, gauge, histogram = sink.counter, sink.gauge, sink.histogram
        self.films = gauge("reelfarm_films", "Films known to the director, by state.", ("state",))
        self.films_finished = counter("reelfarm_films_finished_total",
                                      "Films that reached a final state.", ("state",))
        self.queued = gauge("reelfarm_pool_queued_phases", "Ready phases a pool could run.",
                            ("pool",))
        self.running = gauge("reelfarm_pool_running_phases", "Phases running on a pool.", ("pool",))
        self.replicas = gauge("reelfarm_pool_replicas", "Live workers of a pool.", ("pool",))
        self.busy = gauge("reelfarm_pool_busy_fraction", "Share of a pool's slots running work.",
                          ("pool",))
        self.phases = counter("reelfarm_phases_finished_total", "Phases finished.", ("expert",))
        self.phase_s = histogram("reelfarm_phase_duration_seconds", "Seconds per phase.",
                                 SECONDS_BUCKETS, ("expert",))
        self.step_s = histogram("reelfarm_step_duration_seconds",
                                "Seconds per solver step of a segment.", STEP_BUCKETS, ("expert",))
        self.handoff = counter("reelfarm_handoff_bytes_total",
                               "Bytes of phase outputs (latents + solver state) handed over.")
        self.frames = counter("reelfarm_frames_delivered_total", "Frames archived in film order.")
        self.ttff = histogram("reelfarm_time_to_first_frame_seconds",
                              "Seconds from a film's creation to its first frame.", SECONDS_BUCKETS)
        self.retries = counter("reelfarm_task_retries_total", "Tasks retried, by reason.",
                               ("reason",))
        self.failures = counter("reelfarm_phase_failures_total", "Failed tasks, by reason.",
                                ("reason",))
        self.decision_s = histogram("reelfarm_scheduler_decision_seconds",
                                    "Seconds one schedule() call took.", STEP_BUCKETS)
        self._pools: set[str] = set()

    def on_events(self, events: list[Event], experts: tuple[str, ...]) -> None:
        for e in events:
            if isinstance(e, PhaseFinished):
                labels = {"expert": experts[e.expert]}
                self.phases.inc(1, labels)
                self.phase_s.observe(e.duration, labels)
                if e.num_steps:
                    self.step_s.observe(e.duration / e.num_steps, labels)
                if e.output_bytes:
                    self.handoff.inc(e.output_bytes)
            elif isinstance(e, TaskRetried):
                reason = {"reason": failure_label(e.failure)}
                self.retries.inc(1, reason)
                self.failures.inc(1, reason)
            elif isinstance(e, FilmStateChanged) and e.state == FilmState.FAILED:
                self.failures.inc(1, {"reason": failure_label(e.failure)})

    def film_finished(self, state: FilmState) -> None:
        self.films_finished.inc(1, {"state": state.value})

    def films_by_state(self, states: list[FilmState]) -> None:
        tally = Tally(s.value for s in states)
        for state in FilmState:
            self.films.set(tally.get(state.value, 0), {"state": state.value})

    def pools(self, stats: tuple[PoolStats, ...]) -> None:
        seen = set()
        for p in stats:
            labels = {"pool": p.pool}
            self.queued.set(p.queued_phases, labels)
            self.running.set(p.running_phases, labels)
            self.replicas.set(p.workers, labels)
            self.busy.set(p.busy_fraction, labels)
            seen.add(p.pool)
        for gone in self._pools - seen:  # a pool scaled to zero shows zeros, not stale values
            for gauge in (self.queued, self.running, self.replicas, self.busy):
                gauge.set(0, {"pool": gone})
        self._pools |= seen

    def frame_delivered(self) -> None:
        self.frames.inc(1)

    def first_frame(self, seconds: float) -> None:
        self.ttff.observe(seconds)

    def decision(self, seconds: float) -> None:
        self.decision_s.observe(seconds)
