"""Chaos with real processes: `reelfarm serve --local` is killed (SIGKILL) in the middle
of a film and started again on the same --db and --artifacts. The film resumes and
completes with frames identical to the fault-free render, no completed phase runs again,
and resubmitting the same request_id across the restart gives the same film."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from farm.api.protos import pb
from farm.client.sync import Client
from tests.helpers import board, scene
from tests.serving.test_ray_runtime import inline_frames

pytestmark = [pytest.mark.model, pytest.mark.slow]
BOARD = board([scene(f"s{i}", 17, seed=i) for i in range(4)], steps=6, width=32, height=32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int, tmp: Path) -> subprocess.Popen:
    script = Path(sys.executable).parent / "reelfarm"
    proc = subprocess.Popen([str(script), "serve", "--local", "--port", str(port),
                             "--db", f"sqlite:///{tmp}/jobs.db", "--artifacts", str(tmp / "art")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MKL_CBWR": "COMPATIBLE"})
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # wait for the "reelfarm API on ..." line
        if "reelfarm API on" in line:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError("serve --local did not start")


def test_killed_server_resumes_the_film_identically(tmp_path):
    port = free_port()
    target = f"127.0.0.1:{port}"
    server = start(port, tmp_path)
    try:
        with Client(target) as client:
            film = client.submit(BOARD, request_id="chaos-r1")
            for event in film.watch():  # kill after a few phases, mid-film
                if event.phases_done >= 3:
                    break
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
        server = start(port, tmp_path)
        with Client(target) as client:
            again = client.submit(BOARD, request_id="chaos-r1")
            assert again.name == film.name  # idempotent across the restart: one film
            done = again.wait()
            assert pb.Film.State.Name(done.state) == "STATE_SUCCEEDED", done.state_reason
            frames = np.stack([f.to_array() for f in again.frames()])
            assert np.array_equal(frames, inline_frames(BOARD))
            runs = Counter((e.unit_id, e.phase_index) for e in again.executions()
                           if e.kind == pb.Execution.KIND_PHASE and e.succeeded)
            assert len(runs) == 8 and set(runs.values()) == {1}, runs
            assert len(list(client.list())) == 1
    finally:
        server.kill()
        server.wait(timeout=30)
