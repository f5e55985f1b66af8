"""A client in another language: Node.js (@grpc/grpc-js + @grpc/proto-loader, reading the
.proto files at run time) creates a film and streams its frames from the real server."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.serving.api.helpers import TOKEN

pytestmark = [pytest.mark.grpc, pytest.mark.model]
NODE_CLIENT = Path(__file__).resolve().parents[3] / "clients" / "node"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(not (NODE_CLIENT / "node_modules" / "@grpc").is_dir(),
                    reason="run `npm ci` in clients/node (.ci/run does)")
def test_node_client_creates_a_film_and_streams_its_frames(api_server, connect):
    done = subprocess.run(["node", str(NODE_CLIENT / "film_client.js"), api_server.address,
                           TOKEN["bob"]], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    name, frames, summary = lines[0]["name"], lines[1:-1], lines[-1]
    assert name.startswith("films/") and summary == {"frames": 14}
    assert [(f["scene_id"], f["frame_index"]) for f in frames] == [
        ("n1", k) for k in range(9)] + [("n2", k) for k in range(5)]
    # The same bytes as the Python SDK receives for that film (the server's PNGs).
    python = list(connect("bob").film(name).frames())
    assert [f["sha256"] for f in frames] == [hashlib.sha256(f.data).hexdigest() for f in python]
