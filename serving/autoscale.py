"""Pools that grow with the queue: Ray Serve autoscaling driven by the director's backlog.

Pool replicas serve no requests (they pull work from the director), so Serve's default
policy, which counts ongoing requests, would never see a film. Instead every replica of
a pool reports its pool's load as custom autoscaling metrics (PoolWorker.
record_autoscaling_stats asks the director), and this policy turns it into replicas:

    replicas = ceil((queued + running phases of the pool) / phases_per_replica)

Serve's wrapper then applies the pool's min/max bounds and its upscale/downscale delays
(PoolAutoscaling). New replicas land wherever the cluster offers the pool's resources, so
a host that joins with them takes work as soon as its replica has registered; a replica
Serve stops finishes what it holds and leaves the director cleanly (PoolWorker.__del__).

Imported by the Serve controller (which pickles it by value): keep it free of the model
stack.
"""

from __future__ import annotations

import math
from typing import Any

# The custom metrics a pool replica reports (PoolWorker.record_autoscaling_stats).
QUEUED, RUNNING = "queued_phases", "running_phases"


class BacklogPolicy:
    """A Serve autoscaling policy (a class: Serve builds it once with policy_kwargs)."""

    def __init__(self, phases_per_replica: float = 1.0):
        if not phases_per_replica > 0:
            raise ValueError(f"phases_per_replica must be > 0, got {phases_per_replica}")
        self.phases_per_replica = phases_per_replica

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        metrics = ctx.aggregated_metrics or {}
        return (desired_replicas(_pool_value(metrics.get(QUEUED)),
                                 _pool_value(metrics.get(RUNNING)), self.phases_per_replica,
                                 ctx.current_num_replicas), {})


def desired_replicas(queued: float | None, running: float | None, phases_per_replica: float,
                     current: int) -> int:
    """Replicas for a pool's load; `current` while no replica has reported yet (a pool
    just started, or its replicas still loading), so nothing moves on missing data."""
    if queued is None or running is None:
        return current
    return math.ceil((queued + running) / phases_per_replica)


def _pool_value(per_replica: dict | None) -> float | None:
    # Every replica of a pool reports the same pool-wide figure (read from the director
    # at slightly different times): the largest is the freshest view of a growing queue.
    if not per_replica:
        return None
    return max(per_replica.values())


def autoscaling_config(pool: Any) -> dict[str, Any]:
    """Serve's autoscaling_config for a PoolConfig with `autoscaling` set."""
    scaling = pool.autoscaling
    return {"min_replicas": scaling.min_replicas, "max_replicas": scaling.max_replicas,
            "initial_replicas": pool.replicas, "upscale_delay_s": scaling.upscale_delay_s,
            "downscale_delay_s": scaling.downscale_delay_s,
            "look_back_period_s": scaling.look_back_period_s,
            "policy": {"policy_function": "serving.autoscale:BacklogPolicy",
                       "policy_kwargs": {"phases_per_replica": scaling.phases_per_replica}}}
