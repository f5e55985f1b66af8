"""build_app: the reelfarm Serve application, from one validated config.

                              ┌─────────────────────────────────────────┐
    clients ──> Ingress ────> │ DirectorServer (1 replica)              │
                              │  Director: scheduler, films, archives   │
                              │  RayExecutor: per-worker work queues    │
                              └───▲──────────────▲──────────────▲───────┘
                   register/pull/ │ report       │              │ frames
                    heartbeat     │              │              │
                     PoolHigh (expert "high")  PoolLow ("low")  PoolDecode ("vae", "text")
                       N replicas, each keeps    M replicas       K replicas
                       one expert resident
           latents + solver state move between pools as Ray object refs owned by
           the director; gangs of windows on several replicas swap halos through a
           per-phase HaloMailbox actor.

Serve config:  import_path: serving.app:build_app   args: <ServingConfig fields>
"""

from __future__ import annotations

from typing import Any

from ray import serve

from serving.config import ServingConfig


@serve.deployment(max_ongoing_requests=1000)
class Ingress:
    """Entry point: forwards film calls to the director (the gRPC servicer plugs in here)."""

    def __init__(self, director: Any, *pools: Any):
        self.director = director
        self.pools = pools

    async def create_film(self, storyboard: dict, tenant: str = "default", request_id: str = "",
                          priority: int = 50):
        return await self.director.create_film.remote(storyboard, tenant, request_id, priority)

    async def get_film(self, film_id: str, tenant: str = "default"):
        return await self.director.get_film.remote(film_id, tenant)


def build_app(args: dict) -> serve.Application:
    """Validate `args` as a ServingConfig once and bind the deployment graph above."""
    from serving.director import DirectorServer
    from serving.pool import PoolWorker

    cfg = ServingConfig.model_validate(args)
    raw = cfg.model_dump()
    director = serve.deployment(DirectorServer).options(
        name="DirectorServer", num_replicas=1, max_ongoing_requests=10_000,
        ray_actor_options={"num_cpus": cfg.director.num_cpus},
        logging_config={"enable_access_log": False}).bind(raw)
    pools = []
    for p in cfg.pools:
        options: dict[str, Any] = {"num_cpus": p.num_cpus, "num_gpus": p.num_gpus}
        if p.accelerator_type:
            options["accelerator_type"] = p.accelerator_type
        pools.append(serve.deployment(PoolWorker).options(
            name=f"Pool{p.name}", num_replicas=p.replicas, max_ongoing_requests=100,
            logging_config={"enable_access_log": False},
            ray_actor_options=options).bind(director, p.model_dump(), cfg.model, cfg.device,
                                            cfg.dtype))
    # The ingress only forwards calls: it needs no CPU reservation of its own.
    return Ingress.options(ray_actor_options={"num_cpus": 0},
                           logging_config={"enable_access_log": False}).bind(director, *pools)
