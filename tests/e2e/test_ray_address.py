"""`render --executor ray` and `serve --config` start a private Ray cluster unless told to
join one: a current-cluster file left by an old `ray start` never sends them to a dead
address. Ray's temp folder is a fresh one per test (RAY_TMPDIR), holding such a file."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from farm.media.writers import probe_video
from serving.local import ray_address

ROOT = Path(__file__).resolve().parents[2]
REELFARM = str(Path(sys.executable).parent / "reelfarm")
# Loopback, a port nothing listens on: what a stale file of a stopped cluster points at.
DEAD = "127.0.0.1:9"


def test_ray_address_is_private_unless_named(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local"
    assert ray_address("auto") == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.1.2.3:6379")
    assert ray_address(None) == "10.1.2.3:6379"
    assert ray_address("HOST:6379") == "HOST:6379"


@pytest.fixture
def stale_ray_tmp(monkeypatch):
    """A Ray temp folder whose current-cluster file names a dead address. Short path:
    Ray puts Unix sockets in it (at most 107 bytes)."""
    tmp = Path(tempfile.mkdtemp(prefix="rf-ray-"))
    (tmp / "ray").mkdir()
    (tmp / "ray" / "ray_current_cluster").write_text(DEAD)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(tmp)
    yield env
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.ray
@pytest.mark.slow
def test_render_on_ray_ignores_a_stale_cluster_file(tmp_path, stale_ray_tmp):
    board = {"title": "t", "fps": 16, "width": 32, "height": 32, "model": "tiny", "steps": 2,
             "scenes": [{"id": "s1", "prompt": "a red circle", "frames": 5, "seed": 1}]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(board))
    out = tmp_path / "film.mp4"
    done = subprocess.run([REELFARM, "render", str(tmp_path / "film.yaml"), "-o", str(out),
                           "--executor", "ray"], env=stale_ray_tmp, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert probe_video(out)["frames"] == 5


def test_address_flag_needs_the_ray_executor(capsys):
    from farm.cli import main

    assert main(["render", str(ROOT / "examples" / "trailer.yaml"), "-o", "x.mp4",
                 "--address", "auto"]) == 2
    assert "--address goes with --executor ray" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
@pytest.mark.slow
def test_serve_config_ignores_a_stale_cluster_file(tmp_path, stale_ray_tmp):
    config = yaml.safe_load((ROOT / "serving" / "serve_config.yaml").read_text())
    config["grpc_options"]["port"] = _free_port()
    config["http_options"]["port"] = _free_port()
    config["applications"][0]["args"]["artifacts"] = str(tmp_path / "artifacts")
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([REELFARM, "serve", "--config", str(tmp_path / "serve.yaml")],
                                env=stale_ray_tmp, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "reelfarm app 'reelfarm' running" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert DEAD not in log.read_text()
