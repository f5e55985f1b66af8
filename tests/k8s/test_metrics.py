"""Reading the per-pool gauges from Prometheus text exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from farm.k8s.decide import PoolLoad
from farm.k8s.metrics import METRIC_NAMES, MetricsError, fetch, parse_pool_loads, read_loads


def exposition(pools: dict[str, tuple[float, float, float, float]], prefix: str = "",
               extra: dict[str, str] | None = None) -> str:
    """What a prometheus-client registry exports for these (queued, running, replicas, busy)."""
    reg = CollectorRegistry()
    labels = ["pool", *(extra or {})]
    gauges = [Gauge(prefix + name, name, labels, registry=reg) for name in METRIC_NAMES]
    for pool, values in pools.items():
        for gauge, value in zip(gauges, values, strict=True):
            gauge.labels(pool=pool, **(extra or {})).set(value)
    return generate_latest(reg).decode()


def test_reads_what_prometheus_client_exports():
    text = exposition({"High": (12, 5, 5, 0.96), "Low": (1, 3, 3, 0.5)})
    assert parse_pool_loads(text) == {
        "High": PoolLoad("High", 12, 5, 5, 0.96), "Low": PoolLoad("Low", 1, 3, 3, 0.5)}


def test_reads_rays_prefixed_names_with_extra_labels():
    # Ray's metrics export prefixes application metrics with ray_ and adds its own labels.
    text = exposition({"High": (4, 2, 5, 0.4)}, prefix="ray_",
                      extra={"SessionName": "session_1", "NodeAddress": "10.0.0.7"})
    assert parse_pool_loads(text) == {"High": PoolLoad("High", 4, 2, 5, 0.4)}


def test_sources_add_up_and_busy_is_weighted_by_replicas():
    a = exposition({"High": (4, 2, 6, 1.0)}, extra={"instance": "a"})
    b = exposition({"High": (2, 1, 2, 0.0)}, extra={"instance": "b"})
    assert parse_pool_loads(a, b) == {"High": PoolLoad("High", 6, 3, 8, 0.75)}


def test_same_series_from_two_texts_are_two_sources():
    a = exposition({"High": (4, 2, 6, 1.0)})
    b = exposition({"High": (2, 1, 2, 0.0)})
    assert parse_pool_loads(a, b)["High"].busy_fraction == pytest.approx(0.75)


def test_a_pool_missing_a_gauge_is_left_out():
    text = exposition({"High": (4, 2, 5, 0.4), "Low": (1, 1, 3, 0.2)})
    text = "\n".join(line for line in text.splitlines()
                     if not line.startswith('reelfarm_pool_busy_fraction{pool="Low"}'))
    assert set(parse_pool_loads(text)) == {"High"}


def test_other_metrics_are_ignored():
    text = exposition({"High": (4, 2, 5, 0.4)}) + (
        "# TYPE reelfarm_frames_delivered_total counter\n"
        'reelfarm_frames_delivered_total{pool="High"} 99\n'
        "# TYPE ray_serve_num_grpc_requests_total counter\n"
        'ray_serve_num_grpc_requests_total{route="x"} 3\n')
    assert parse_pool_loads(text) == {"High": PoolLoad("High", 4, 2, 5, 0.4)}


def test_garbage_is_an_error_and_files_are_sources(tmp_path):
    with pytest.raises(MetricsError):
        parse_pool_loads('reelfarm_pool_replicas{pool="High" 3\n')
    path = tmp_path / "m.txt"
    path.write_text(exposition({"Low": (0, 0, 3, 0.0)}))
    assert read_loads([str(path)]) == {"Low": PoolLoad("Low", 0, 0, 3, 0.0)}
    with pytest.raises(MetricsError, match="nope"):
        fetch(str(tmp_path / "nope"))
    with pytest.raises(MetricsError):
        fetch("http://127.0.0.1:9/metrics", timeout=2)
