"""A Ray cluster on this machine running the reelfarm app (render --executor ray, bench).

    with LocalCluster(expert_pools("tiny", artifacts=...)) as director:
        info = director.create_film.remote(storyboard).result()
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from serving.config import ServingConfig


class LocalCluster:
    def __init__(self, config: ServingConfig, *, num_cpus: int | None = None,
                 env: dict[str, str] | None = None, address: str | None = None):
        """`address`: a Ray cluster to join (None: RAY_ADDRESS if set, else a private
        cluster started here; see ray_address)."""
        self.config = config
        self.address = ray_address(address)
        self.num_cpus = num_cpus or os.cpu_count() or 2
        # Several replicas share this machine's cores: OpenMP teams of idle replicas must
        # sleep, not spin, or they steal cycles from the replica that is computing.
        self.env = {"HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
        self.startup_s = 0.0

    def __enter__(self) -> Any:
        if self.address == "local":
            # Ray 2.60 turns token auth on by default; a single-machine cluster on loopback
            # started by this process needs none (set RAY_AUTH_MODE to override).
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import ray
        from ray import serve

        from serving.app import build_app

        started = time.perf_counter()
        own = self.address == "local"  # resources are the joined cluster's own otherwise
        ray.init(address=self.address, num_cpus=self.num_cpus if own else None,
                 include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": self.env})
        serve.run(build_app(self.config.model_dump()), name="reelfarm", route_prefix=None)
        self.startup_s = time.perf_counter() - started
        return serve.get_deployment_handle("DirectorServer", app_name="reelfarm")

    def __exit__(self, *exc: object) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def ray_address(address: str | None) -> str:
    """The Ray address to give ray.init: `address`, else RAY_ADDRESS, else "local".

    ray.init() with no address joins whatever cluster Ray's current-cluster file names,
    which an earlier `ray start` may have left pointing at a cluster long gone; "local"
    always starts a private cluster for this process."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def small_machine_pools(models: str | Sequence[str], artifacts: str,
                        threads: int = 0) -> ServingConfig:
    """Expert pools sized for a laptop or CI box: fractional CPUs, one replica each; per
    model when several (pool names then start with the model's label, e.g. ToyHigh)."""
    from serving.config import DirectorSettings, expert_layout, pool_label

    models = [models] if isinstance(models, str) else list(models)
    pools = [p for m in models for p in expert_layout(
        m, pool_label(m) if len(models) > 1 else "", num_cpus=0.25, torch_threads=threads)]
    return ServingConfig(models=models, artifacts=artifacts, pools=pools,
                         director=DirectorSettings(num_cpus=0.25))
