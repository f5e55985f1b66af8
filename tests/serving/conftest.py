"""A local Ray cluster with the reelfarm Serve app, shared by the Ray tests of a session."""

from __future__ import annotations

import os
import socket

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The Serve gRPC proxy's port for this test session (loopback only).
GRPC_PORT = _free_port()


# The media-conditioned families (tests/serving/media_films.py) are served too: VACE in
# expert pools (its references, control video and mask are encoded on a Decode replica
# and reach the expert replicas as Ray objects), the others one replica each.
MEDIA_MODELS = ["tiny-vace-a14b", "tiny-i2v-a14b", "tiny-ti2v-5b", "tiny-s2v-14b",
                "tiny-animate-14b"]


@pytest.fixture(scope="session")
def ray_app(tmp_path_factory):
    """The Serve app on a local cluster: 2 high-noise replicas, 2 low-noise, 2 decoders
    of the tiny model, and the media families' pools (MEDIA_MODELS)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray = pytest.importorskip("ray")
    from ray import serve

    from serving.app import build_app
    from serving.config import (
        DirectorSettings,
        GangSettings,
        PoolConfig,
        ServingConfig,
        SpeedupTableSettings,
        expert_layout,
        whole_model_pools,
    )

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"MKL_CBWR": "COMPATIBLE", "HF_HUB_OFFLINE": "1"}})
    # CPU kernels split reductions by thread count, and a different split can move a
    # pixel by 1/255: replicas use the same intra-op thread count as this process so the
    # frames can be compared bit for bit with the inline path.
    import torch

    threads = torch.get_num_threads()
    pools = [PoolConfig(name="High", holds=["high"], replicas=2, num_cpus=0.25,
                        torch_threads=threads),
             PoolConfig(name="Low", holds=["low"], replicas=2, num_cpus=0.25,
                        torch_threads=threads),
             PoolConfig(name="Decode", holds=["vae", "text"], replicas=2, num_cpus=0.25,
                        torch_threads=threads)]
    pools = [p.model_copy(update={"model": "tiny"}) for p in pools]
    pools += expert_layout(MEDIA_MODELS[0], "Vace", num_cpus=0.1, torch_threads=threads)
    pools += whole_model_pools(MEDIA_MODELS[1:], torch_threads=threads)
    # Gangs inside a segment for 48x48 films only: CFG parallel (a table with 1 head allows
    # no Ulysses degree), exact, so frames still equal the inline render's. The other
    # tests' 32x32 films have no table: their phases stay on one replica.
    gangs = GangSettings(tables=[SpeedupTableSettings(family="t2v-a14b", height=48, heads=1,
                                                      seconds={1: 100.0}, pred_bytes=1e4)],
                         min_efficiency=0.5)
    cfg = ServingConfig(models=["tiny", *MEDIA_MODELS],
                        artifacts=str(tmp_path_factory.mktemp("ray-artifacts")),
                        pools=pools,
                        director=DirectorSettings(liveness_timeout_s=3.0, num_cpus=0.25,
                                                  gangs=gangs))
    from ray.serve.config import gRPCOptions

    serve.start(http_options={"host": "127.0.0.1", "port": _free_port()},
                grpc_options=gRPCOptions(port=GRPC_PORT, grpc_servicer_functions=[
                    "reelfarm.v1.film_service_pb2_grpc.add_FilmServiceServicer_to_server",
                    "grpc_health.v1.health_pb2_grpc.add_HealthServicer_to_server"]))
    # Serve's proxies (gRPC too) route only to applications that have a route prefix.
    serve.run(build_app(cfg.model_dump()), name="reelfarm", route_prefix="/reelfarm")
    yield serve.get_deployment_handle("DirectorServer", app_name="reelfarm")
    serve.shutdown()
    ray.shutdown()
