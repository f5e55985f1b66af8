"""Tokens, storyboards and a small HTTP/SSE client for the web tests (no fixtures here)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

TOKENS = {"alice-token-0123456789abcdef": "alice", "bob-token-0123456789abcdef01": "bob",
          "carol-token-0123456789abcdef": "carol"}
TOKEN = {tenant: token for token, tenant in TOKENS.items()}


def board(scenes: int = 2, frames: int = 9, title: str = "web test", **film: object) -> dict:
    data = {"title": title, "fps": 16, "width": 32, "height": 32, "model": "tiny", "steps": 4,
            "scenes": [{"id": f"s{i}", "prompt": f"scene {i} of a web test", "frames": frames,
                        "seed": i + 1} for i in range(scenes)]}
    data.update(film)
    return data


def request(base: str, path: str, tenant: str | None = None, method: str = "GET",
            body: object = None, headers: dict | None = None,
            timeout: float = 60.0) -> tuple[int, dict, bytes]:
    """(status, headers (lower-case names), body) of one HTTP call to the monitor."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    h = dict(headers or {})
    if tenant is not None:
        h["Authorization"] = f"Bearer {TOKEN[tenant]}"
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    try:
        conn.request(method, url.path + path, body=data, headers=h)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def call(base: str, path: str, tenant: str | None = None, **kw) -> tuple[int, object]:
    status, _, data = request(base, path, tenant, **kw)
    return status, json.loads(data)


def sse(base: str, path: str, tenant: str | None, headers: dict | None = None,
        timeout: float = 120.0) -> Iterator[tuple[str, str | None, object]]:
    """(event, id, data) of a server-sent event stream, through its `end` or `error`
    event (then the connection is closed), or until `timeout`."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    h = {"Authorization": f"Bearer {TOKEN[tenant]}"} if tenant else {}
    h.update(headers or {})
    conn.request("GET", url.path + path, headers=h)
    res = conn.getresponse()
    assert res.status == 200, (res.status, res.read())
    assert res.getheader("content-type", "").startswith("text/event-stream")
    deadline = time.monotonic() + timeout
    try:
        event, ident, data = "message", None, []
        while time.monotonic() < deadline:
            line = res.readline()  # de-chunked
            if not line:
                return
            line = line.decode().rstrip("\r\n")
            if line == "":
                if data:
                    yield event, ident, json.loads("\n".join(data))
                    if event in ("end", "error"):
                        return
                event, ident, data = "message", None, []
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    event = value
                elif field == "id":
                    ident = value
                elif field == "data":
                    data.append(value)
        raise AssertionError(f"{path}: stream still open after {timeout} s")
    finally:
        conn.close()


def wait_final(handle, timeout: float = 180.0):
    from farm.client.common import is_final

    deadline = time.monotonic() + timeout
    while not is_final(film := handle.get()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{handle.name} still {film.state} after {timeout} s")
        time.sleep(0.2)
    return film
