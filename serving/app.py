"""build_app: the reelfarm Serve application, from one validated config.

                      gRPC    ┌─────────────────────────────────────────┐
    clients ──> Serve proxy ─> │ DirectorServer (ingress, 1 replica)     │
     reelfarm.v1.FilmService  │  FilmApi -> Director: films, archives   │
                              │  RayExecutor: per-worker work queues    │
                              └───▲──────────────▲──────────────▲───────┘
                   register/pull/ │ report       │              │ frames
                    heartbeat     │              │              │
                     PoolHigh (expert "high")  PoolLow ("low")  PoolDecode ("vae", "text")
                       N replicas, each keeps    M replicas       K replicas
                       one expert resident
           a pool with `autoscaling` grows and shrinks with its backlog: its replicas
           report the director's queue (serving.autoscale) and Serve places new ones
           wherever the cluster offers the pool's resources (e.g. a host that joined).
           latents + solver state move between pools as Ray object refs owned by
           the director; gangs of windows on several replicas swap halos through a
           per-phase HaloMailbox actor.

Models: the app serves ServingConfig.models (default every built-in one). Each pool holds
parts of one model and its replicas advertise "<model>/<part>", so a film's work goes
only to its own model's pools (above: one model's pools; another model brings its own).

HTTP: the web monitor (farm.web) at http://<proxy>:<http port>/<route prefix>/, served by
the DirectorServer replica as its ASGI ingress, behind the API's tokens.

Serve config:  import_path: serving.app:build_app   args: <ServingConfig fields>
               grpc_options.grpc_servicer_functions:
                 [reelfarm.v1.film_service_pb2_grpc.add_FilmServiceServicer_to_server,
                  grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server]
"""

from __future__ import annotations

from typing import Any

from ray import serve

from serving.autoscale import autoscaling_config
from serving.config import ServingConfig


def build_app(args: dict) -> serve.Application:
    """Validate `args` as a ServingConfig once and bind the deployment graph above."""
    from serving.director import DirectorServer
    from serving.pool import PoolWorker

    cfg = ServingConfig.model_validate(args)
    raw = cfg.model_dump()
    pools = []
    for pool in cfg.pools:
        options: dict[str, Any] = {"num_cpus": pool.num_cpus, "num_gpus": pool.num_gpus}
        if pool.accelerator_type:
            options["accelerator_type"] = pool.accelerator_type
        if pool.resources:
            options["resources"] = dict(pool.resources)
        scaling: dict[str, Any] = (
            {"autoscaling_config": autoscaling_config(pool)} if pool.autoscaling is not None
            else {"num_replicas": pool.replicas})
        pools.append(serve.deployment(PoolWorker).options(
            name=f"Pool{pool.name}", max_ongoing_requests=100, **scaling,
            graceful_shutdown_timeout_s=pool.drain_timeout_s,
            logging_config={"enable_access_log": False},
            ray_actor_options=options).bind(pool.model_dump(), pool.model, cfg.device, cfg.dtype,
                                            cfg.artifacts))
    # The director is also the HTTP ingress: its replica owns the films, so the web
    # monitor (farm.web, built by DirectorServer.__serve_build_asgi_app__) runs there.
    return serve.deployment(serve.ingress()(DirectorServer)).options(
        name="DirectorServer", num_replicas=1, max_ongoing_requests=10_000,
        ray_actor_options={"num_cpus": cfg.director.num_cpus,
                           **({"resources": dict(cfg.director.resources)}
                              if cfg.director.resources else {})},
        logging_config={"enable_access_log": False}).bind(raw, *pools)
