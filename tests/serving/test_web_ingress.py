"""The web monitor in the cluster: Ray Serve's HTTP proxy routes the app's prefix to the
DirectorServer replica, whose ASGI ingress is farm.web over its own FilmApi (the replica
owns the films). The shared test app runs open (no tokens file): tenant `default`."""

from __future__ import annotations

import base64
import io
import time

import pytest
from PIL import Image

from tests.web.helpers import call, request, sse

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.web]


def _base() -> str:
    from ray.serve.context import _get_global_client

    return f"http://127.0.0.1:{_get_global_client().http_config.port}/reelfarm/"


def test_web_monitor_through_the_serve_http_proxy(ray_app):
    base = _base()
    board = {"title": "web on ray", "fps": 16, "width": 32, "height": 32, "steps": 4,
             "scenes": [{"id": "a", "prompt": "a fox", "frames": 9, "seed": 1},
                        {"id": "b", "prompt": "a boat", "frames": 9, "seed": 2}]}
    film_id = ray_app.create_film.remote(board).result().film_id
    status, headers, page = request(base, "")
    assert status == 200 and b"static/js/main.js" in page
    status, headers, _ = request(base.rstrip("/"), "")  # /reelfarm -> /reelfarm/
    assert status in (301, 302, 307, 308) and headers["location"].endswith("/reelfarm/")
    assert request(base, "static/js/main.js")[0] == 200
    assert call(base, "api/v1/whoami")[1]["open"] is True

    deadline = time.monotonic() + 240
    while (film := call(base, f"api/v1/films/{film_id}")[1])["state"] != "SUCCEEDED":
        assert film["state"] not in ("FAILED", "CANCELLED") and time.monotonic() < deadline, film
        time.sleep(0.5)
    assert film_id in [f["id"] for f in call(base, "api/v1/films")[1]]

    # The Gantt chart's bars: every phase on a replica of the pool holding its expert.
    events = [d for kind, _, d in sse(base, f"api/v1/films/{film_id}/events", None)
              if kind == "event"]
    phases = [e for e in events if e["kind"] == "phase"]
    assert len(phases) == 4 and all(e["duration"] > 0 for e in phases)
    pools = call(base, "api/v1/pools")[1]
    pool_of = {w["worker_id"]: w["pool"] for w in pools["workers"]}
    # the tiny model's pools (the app serves the media families too: tests/serving/conftest)
    holds = {p["pool"]: p["holds"] for p in pools["pools"] if p["holds"][0].startswith("tiny/")}
    for e in phases:  # replicas advertise "<model>/<part>"
        assert e["worker_ids"] and all(f"tiny/{e['expert']}" in holds[pool_of[w]]
                                       for w in e["worker_ids"]), e
    assert holds == {"High": ["tiny/high"], "Low": ["tiny/low"],
                     "Decode": ["tiny/text", "tiny/vae"]}
    # 2 + 2 + 2 replicas; an earlier test may have killed one, whose successor registers
    # under a new id: slots per expert are those of the live workers of its pool.
    alive = {p: len([w for w in pools["workers"] if w["pool"] == p and w["alive"]]) for p in holds}
    assert all(1 <= alive[p] <= 2 for p in ("High", "Low", "Decode")), alive
    # an expert's slots: every live worker that holds it, of any model the app serves
    every = {p["pool"]: p["holds"] for p in pools["pools"]}
    assert pools["split"]["pool_slots"] == {
        expert: sum(w["slots"] for w in pools["workers"] if w["alive"] and any(
            h.endswith(f"/{expert}") for h in every[w["pool"]]))
        for expert in pools["split"]["pool_slots"]}
    assert pools["split"]["pool_slots"]["high"] >= alive["High"]

    frames = [d for kind, _, d in sse(base, f"api/v1/films/{film_id}/frames", None)
              if kind == "frame"]
    assert [f["film_index"] for f in frames] == list(range(18))
    assert Image.open(io.BytesIO(base64.b64decode(frames[0]["data"]))).size == (32, 32)
    status, headers, mp4 = request(base, f"api/v1/films/{film_id}/mp4")
    assert status == 200 and headers["content-type"] == "video/mp4" and mp4[4:8] == b"ftyp"
