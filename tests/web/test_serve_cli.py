"""`reelfarm serve --local --web-port`: the monitor in the serve process, beside the gRPC
API, behind the same tokens; it stops with the server."""

from __future__ import annotations

import re
import time

import pytest

from bench.serve_proc import start_server, stop_server
from tests.web.helpers import TOKENS, call, request

pytestmark = [pytest.mark.web, pytest.mark.model]


def test_serve_local_serves_the_monitor_behind_its_tokens(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("".join(f"{tenant} {token}\n" for token, tenant in TOKENS.items()))
    log = tmp_path / "serve.log"
    proc, _ = start_server(["--web-port", "0", "--tokens", str(tokens), "--db",
                            f"sqlite:///{tmp_path / 'db.sqlite'}", "--artifacts",
                            str(tmp_path / "artifacts")], log)
    try:
        m = re.search(r"^web monitor on (http://127\.0\.0\.1:\d+/)$", log.read_text(), re.MULTILINE)
        assert m, log.read_text()
        base = m.group(1)
        status, _, page = request(base, "")
        assert status == 200 and b"<title>reelfarm monitor</title>" in page
        assert call(base, "api/v1/films")[0] == 401
        assert call(base, "api/v1/whoami", "bob")[1]["tenant"] == "bob"
    finally:
        assert stop_server(proc) == 0
    time.sleep(0.2)
    with pytest.raises(OSError):  # stopped with the server
        request(base, "", timeout=2)
