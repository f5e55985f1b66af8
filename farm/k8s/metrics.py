"""The balancer's input: per-pool gauges in Prometheus text exposition.

The director is the one place that knows the queue per pool (its scheduler state is
in-process), so it exports these gauges, labelled with the Serve pool name
(`pool="High"`, as in ServingConfig.pools[].name):

    reelfarm_pool_queued_phases{pool}   phases ready to run and waiting for the pool
    reelfarm_pool_running_phases{pool}  phases running on the pool's replicas
    reelfarm_pool_replicas{pool}        live workers of the pool registered with the director
    reelfarm_pool_busy_fraction{pool}   share of the pool's slots running work, 0..1

In the cluster they come through Ray's metrics export, which prefixes application metrics
with `ray_` (`ray_reelfarm_pool_queued_phases`); both spellings are read. Any source that
serves this text works: the director's /metrics in the local mode, or Prometheus'
/federate?match[]={__name__=~"(ray_)?reelfarm_pool_.*"} in the cluster. Series of the same
pool from several sources (e.g. two clusters during an upgrade) are added up; the busy
fraction is averaged, weighted by replicas.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from pathlib import Path

from farm.k8s.decide import PoolLoad

PREFIX = "reelfarm_pool_"
FIELDS = ("queued_phases", "running_phases", "replicas", "busy_fraction")
METRIC_NAMES = tuple(PREFIX + f for f in FIELDS)


class MetricsError(ValueError):
    pass


def parse_pool_loads(*texts: str) -> dict[str, PoolLoad]:
    """PoolLoad per pool from one or more exposition texts; pools missing any of the four
    gauges are left out (the balancer then holds instead of guessing)."""
    # values[pool][field][series] where a series is (text index, its other labels).
    values: dict[str, dict[str, dict[tuple, float]]] = defaultdict(lambda: defaultdict(dict))
    for i, text in enumerate(texts):
        for name, labels, value in _samples(text):
            field = name.removeprefix("ray_")[len(PREFIX):]
            pool = labels.pop("pool")
            series = (i, tuple(sorted(labels.items())))
            values[pool][field][series] = values[pool][field].get(series, 0.0) + value
    return {pool: _load(pool, fields) for pool, fields in values.items()
            if all(fields.get(f) for f in FIELDS)}


def _samples(text: str):
    from prometheus_client.parser import text_string_to_metric_families

    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name.removeprefix("ray_")
                if (name.startswith(PREFIX) and name[len(PREFIX):] in FIELDS
                        and sample.labels.get("pool")):
                    yield sample.name, dict(sample.labels), float(sample.value)
    except ValueError as exc:
        raise MetricsError(f"not Prometheus text exposition: {exc}") from None


def _load(pool: str, fields: dict[str, dict[tuple, float]]) -> PoolLoad:
    replicas, busy = fields["replicas"], fields["busy_fraction"]
    paired = [s for s in busy if s in replicas]
    weight = sum(replicas[s] for s in paired)
    if weight > 0:
        fraction = sum(busy[s] * replicas[s] for s in paired) / weight
    else:
        fraction = sum(busy.values()) / len(busy)
    return PoolLoad(pool=pool, queued_phases=round(sum(fields["queued_phases"].values())),
                    running_phases=round(sum(fields["running_phases"].values())),
                    replicas=round(sum(replicas.values())),
                    busy_fraction=min(max(fraction, 0.0), 1.0))


def fetch(source: str, timeout: float = 10.0) -> str:
    """The exposition text at an http(s) URL or in a file."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(source, timeout=timeout) as resp:  # noqa: S310
                return resp.read().decode("utf-8")
        except OSError as exc:
            raise MetricsError(f"{source}: {exc}") from None
    try:
        return Path(source).read_text()
    except OSError as exc:
        raise MetricsError(f"{source}: {exc}") from None


def read_loads(sources: list[str], timeout: float = 10.0) -> dict[str, PoolLoad]:
    """Every source read and parsed apart (a pool may be reported by several of them)."""
    return parse_pool_loads(*(fetch(s, timeout) for s in sources))
