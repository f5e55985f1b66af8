"""The farm's metrics: one `reelfarm_` prefix, base units, `_total` counters, and no film,
tenant or user ids as labels (labels: state, pool, expert, reason: a handful of values).

    reelfarm_films{state}                          gauge     films known, by state
    reelfarm_films_finished_total{state}           counter   films that reached a final state
    reelfarm_pool_queued_phases{pool}              gauge     ready phases a pool could run
    reelfarm_pool_running_phases{pool}             gauge     phases running on the pool
    reelfarm_pool_replicas{pool}                   gauge     live workers of the pool
    reelfarm_pool_busy_fraction{pool}              gauge     share of the pool's slots busy
    reelfarm_phases_finished_total{expert}         counter
    reelfarm_phase_duration_seconds{expert}        histogram seconds per phase (to hours)
    reelfarm_step_duration_seconds{expert}         histogram seconds per solver step
    reelfarm_handoff_bytes_total                   counter   bytes of phase outputs handed over
    reelfarm_frames_delivered_total                counter   frames archived in film order
    reelfarm_time_to_first_frame_seconds           histogram from film creation
    reelfarm_task_retries_total{reason}            counter
    reelfarm_phase_failures_total{reason}          counter   failed tasks (retried or not)
    reelfarm_scheduler_decision_seconds            histogram one schedule() call

`reason` is a FailureKind (farm.sched.output: error, worker_lost, input_lost, storage,
excluded, cancelled), named where the failure was known and carried on the event.

Two sinks: a prometheus_client registry (`serve --local --metrics-port`: /metrics), and
Ray's metrics API in the cluster (Ray exports them with a `ray_` prefix from every node's
metrics agent; see docs/operations.md).
"""

from __future__ import annotations

from typing import Any, Protocol

from farm.sched.output import FailureKind

# Buckets that reach hours: a 720p phase of the 14B experts runs for minutes.
SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600,
                   7200, 14400)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120)


def failure_label(failure: FailureKind | None) -> str:
    """The `reason` label of a failure: its FailureKind, named where the failure was
    known (the executor, or the scheduler) and carried on the report and the event."""
    return (failure or FailureKind.ERROR).value


class Sink(Protocol):
    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any: ...

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any: ...

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...],
                  labels: tuple[str, ...] = ()) -> Any: ...


class PrometheusSink:
    """prometheus_client instruments in one registry (served at /metrics)."""

    def __init__(self, registry: Any = None):
        from prometheus_client import CollectorRegistry

        self.registry = registry or CollectorRegistry()

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        from prometheus_client import Counter

        return _Prom(Counter(name.removesuffix("_total"), doc, labels, registry=self.registry))

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        from prometheus_client import Gauge

        return _Prom(Gauge(name, doc, labels, registry=self.registry))

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...],
                  labels: tuple[str, ...] = ()) -> Any:
        from prometheus_client import Histogram

        return _Prom(Histogram(name, doc, labels, buckets=buckets, registry=self.registry))

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _Prom:
    def __init__(self, metric: Any):
        self.metric = metric

    def _of(self, labels: dict[str, str] | None) -> Any:
        return self.metric.labels(**labels) if labels else self.metric

    def inc(self, value: float = 1.0, labels: dict[str, str] | None = None) -> None:
        self._of(labels).inc(value)

    def set(self, value: float, labels: dict[str, str] | None = None) -> None:
        self._of(labels).set(value)

    def observe(self, value: float, labels: dict[str, str] | None = None) -> None:
        self._of(labels).observe(value)


class RaySink:
    """ray.util.metrics instruments: exported by Ray's metrics agent on every node."""

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        from ray.util.metrics import Counter

        return _Ray(Counter(name.removesuffix("_total"), doc, tag_keys=labels), "inc")

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        from ray.util.metrics import Gauge

        return _Ray(Gauge(name, doc, tag_keys=labels), "set")

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...],
                  labels: tuple[str, ...] = ()) -> Any:
        from ray.util.metrics import Histogram

        return _Ray(Histogram(name, doc, boundaries=list(buckets), tag_keys=labels), "observe")


class _Ray:
    def __init__(self, metric: Any, kind: str):
        self.metric, self.kind = metric, kind

    def inc(self, value: float = 1.0, labels: dict[str, str] | None = None) -> None:
        self.metric.inc(value, tags=labels)

    def set(self, value: float, labels: dict[str, str] | None = None) -> None:
        self.metric.set(value, tags=labels)

    def observe(self, value: float, labels: dict[str, str] | None = None) -> None:
        self.metric.observe(value, tags=labels)
