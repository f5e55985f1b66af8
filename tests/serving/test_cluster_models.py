"""The cluster app serves several models, each from its own pools: `reelfarm serve --config`
with the shipped serving/serve_config.yaml (models tiny and toy: one family, different
weights) on a Ray cluster of its own, real gRPC through Serve's proxy. A film of each
model renders, and every phase of a film ran on a replica of its own model's pools."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from bench.serve_proc import REELFARM
from tests.serving.conftest import _free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.grpc]

ROOT = Path(__file__).resolve().parents[2]
TOY = {"title": "toy", "fps": 16, "width": 64, "height": 64, "model": "toy", "steps": 3,
       "scenes": [{"id": "a", "prompt": "a red circle moves right on a blue background",
                   "frames": 17, "seed": 1}]}
TINY = {"title": "tiny", "fps": 16, "width": 32, "height": 32, "model": "tiny", "steps": 3,
        "scenes": [{"id": "a", "prompt": "a boat", "frames": 9, "seed": 2},
                   {"id": "b", "prompt": "a fox", "frames": 9, "seed": 3}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The shipped Serve config on free ports, with a job store (for the render log);
    (gRPC address, the config's app args)."""
    root = tmp_path_factory.mktemp("cluster")
    config = yaml.safe_load((ROOT / "serving" / "serve_config.yaml").read_text())
    config["http_options"]["port"], config["grpc_options"]["port"] = _free_port(), _free_port()
    args = config["applications"][0]["args"]
    args.update(artifacts=str(root / "art"), database_url=f"sqlite:///{root / 'jobs.db'}")
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a cluster of its own
    env.update(MKL_CBWR="COMPATIBLE", HF_HUB_OFFLINE="1")
    log = root / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([REELFARM, "serve", "--config", str(root / "config.yaml")],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        deadline = time.monotonic() + 300
        while "running; gRPC on port" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.5)
        yield f"127.0.0.1:{config['grpc_options']['port']}", args
    finally:
        proc.send_signal(signal.SIGTERM)  # serve.shutdown(), then Ray's own processes
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_shipped_config_serves_toy_and_tiny_from_their_own_pools(cluster):
    from farm.api.protos import pb
    from farm.client.sync import Client
    from tests.serving.api.helpers import wait_final

    address, args = cluster
    assert args["models"][:2] == ["tiny", "toy"]
    prefixes = {m: tuple(p["name"].lower() + "-" for p in args["pools"] if p["model"] == m)
                for m in ("toy", "tiny")}
    assert prefixes == {"toy": ("toyhigh-", "toylow-", "toydecode-"), "tiny": ("tiny-",)}
    with Client(address) as client:
        films = {model: client.submit(board) for model, board in (("toy", TOY), ("tiny", TINY))}
        for model, film in films.items():
            done = wait_final(film, timeout=300)
            assert (done.state, done.model) == (pb.Film.STATE_SUCCEEDED, model), done
            assert sum(1 for _ in film.frames()) == sum(s["frames"] for s in
                                                        (TOY if model == "toy" else TINY)["scenes"])
            # The render log names the replicas of every phase: <pool>-<replica>-<n>.
            phases = [e for e in film.executions() if e.kind == pb.Execution.KIND_PHASE]
            workers = {w for e in phases for w in e.worker_ids}
            assert workers and all(w.startswith(prefixes[model]) for w in workers), workers
            if model == "toy":  # an expert pipeline: each expert on its own pool
                assert {(e.expert, e.worker_ids[0].split("-")[0]) for e in phases} == {
                    ("high", "toyhigh"), ("low", "toylow")}
