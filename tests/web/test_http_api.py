"""The web monitor's HTTP endpoints on a real server (127.0.0.1): tokens, tenancy, the
film's JSON, events and frames (SSE, resumable), the mp4, the fleet, and the controls,
whose refusals must be the gRPC API's own (same FilmApi code path, same words)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

import farm.web
from farm.api.auth import Authenticator
from farm.api.errors import InvalidArgument
from farm.api.protos import pb
from farm.director.errors import FailedPrecondition, PermissionDenied
from tests.web.helpers import board, call, request, sse, wait_final

pytestmark = [pytest.mark.web, pytest.mark.model]

ROUTES = [("GET", "api/v1/whoami"), ("GET", "api/v1/films"), ("GET", "api/v1/films:watch"),
          ("GET", "api/v1/pools"), ("GET", "api/v1/pools:watch"), ("GET", "api/v1/films/{id}"),
          ("PATCH", "api/v1/films/{id}"), ("POST", "api/v1/films/{id}:cancel"),
          ("GET", "api/v1/films/{id}/plan"), ("GET", "api/v1/films/{id}/events"),
          ("GET", "api/v1/films/{id}/frames"), ("GET", "api/v1/films/{id}/executions"),
          ("GET", "api/v1/films/{id}/deliverables"), ("GET", "api/v1/films/{id}/mp4")]


@pytest.fixture(scope="module")
def done_film(web_farm):
    """A finished 3-scene film of alice's, and the ETAs the films list showed meanwhile."""
    from farm.client import Client
    from tests.web.helpers import TOKEN

    base = web_farm[2].url
    with Client(web_farm[0].address, token=TOKEN["alice"]) as client:
        # 60 steps (about 5 s here): the film runs for several of the watch's 0.5 s
        # snapshots after its first phase (an ETA needs two progress samples while it
        # runs); with 4 steps a fast machine finished it between two snapshots
        handle = client.submit(board(scenes=3, title="http test", steps=60))
        fid = handle.name.split("/")[1]
        etas = []
        for _, _, films in sse(base, "api/v1/films:watch", "alice", timeout=300):
            mine = next(f for f in films if f["id"] == fid)
            etas.append((mine["state"], mine["eta_seconds"]))
            if mine["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
        assert wait_final(handle).state == pb.Film.STATE_SUCCEEDED
    return fid, etas


def test_the_page_and_its_assets_need_no_token_and_are_locked_down(web_farm):
    base = web_farm[2].url
    status, headers, body = request(base, "")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'src="static/js/main.js"' in body and b"https://" not in body  # nothing off-site
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    # Every asset is served from the package, and none refers to another site (the one
    # URL allowed is the SVG namespace, which is a name, not a fetch).
    static = Path(farm.web.__file__).parent / "static"
    assets = sorted(p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file())
    assert {"index.html", "style.css", "js/main.js", "js/gantt.js"} <= set(assets)
    for asset in assets:
        status, headers, body = request(base, f"static/{asset}")
        assert status == 200 and body == (static / asset).read_bytes(), asset
        urls = set(re.findall(rb"https?://[^\s'\"`)]+", body))
        assert urls <= {b"http://www.w3.org/2000/svg"}, (asset, urls)


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer not-a-token-0123456789", "Basic YWxpY2U6eA=="])
def test_every_api_route_needs_a_valid_token(web_farm, done_film, method, path, auth):
    headers = {"Authorization": auth} if auth else {}
    status, h, body = request(web_farm[2].url, path.format(id=done_film[0]), method=method,
                              headers=headers, body={} if method != "GET" else None)
    assert status == 401, body
    assert h["www-authenticate"].startswith("Bearer")
    error = json.loads(body)["error"]
    assert error["status"] == "UNAUTHENTICATED" and error["code"] == 401
    assert "not-a-token" not in error["message"]  # tokens are never echoed


def test_a_tenant_sees_and_steers_only_its_own_films(web_farm, done_film):
    server, _, web = web_farm
    fid = done_film[0]
    assert fid in [f["id"] for f in call(web.url, "api/v1/films", "alice")[1]]
    assert fid not in [f["id"] for f in call(web.url, "api/v1/films", "bob")[1]]
    with pytest.raises(PermissionDenied) as grpc_side:
        server.api.get_film(pb.GetFilmRequest(name=f"films/{fid}"), "bob")
    for method, path in ROUTES[5:]:
        status, body = call(web.url, path.format(id=fid), "bob", method=method,
                            body={"priority": 1} if method != "GET" else None)
        assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED", (path, body)
        assert body["error"]["message"] == str(grpc_side.value)
    assert call(web.url, "api/v1/films/nosuchfilm", "bob")[0] == 404
    status, body = call(web.url, "api/v1/films/BAD%21", "bob")
    assert status == 400 and body["error"]["message"] == (
        "name: 'films/BAD!' is not a film name (films/{film})")


def test_film_json_plan_log_deliverables_and_mp4(web_farm, done_film):
    _, director, web = web_farm
    fid, etas = done_film
    status, film = call(web.url, f"api/v1/films/{fid}", "alice")
    assert status == 200 and film["state"] == "SUCCEEDED" and film["name"] == f"films/{fid}"
    assert film["frames_done"] == film["frames_total"] == 27
    assert film["phases_done"] == film["phases_total"] == 6
    assert film["time_to_first_frame"] > 0 and film["eta_seconds"] is None
    assert any(s == "RUNNING" and e is not None and e >= 0 for s, e in etas), etas
    plan = call(web.url, f"api/v1/films/{fid}/plan", "alice")[1]
    assert [s["id"] for s in plan["scenes"]] == ["s0", "s1", "s2"]
    assert [p["expert"] for p in plan["phases"]] == ["high", "low"]
    log = call(web.url, f"api/v1/films/{fid}/executions", "alice")[1]
    assert ([x["kind"] for x in log].count("PHASE") == 6
            and [x["kind"] for x in log].count("DECODE") == 3)
    assert len(log) == len(director.executions(fid, "alice"))
    deliver = call(web.url, f"api/v1/films/{fid}/deliverables", "alice")[1]
    mp4 = director.mp4_path(fid, "alice")
    assert deliver["mp4"]["bytes"] == mp4.stat().st_size and deliver["mp4"]["labelled"] is True
    status, headers, data = request(web.url, f"api/v1/films/{fid}/mp4", "alice")
    assert status == 200 and headers["content-type"] == "video/mp4" and data == mp4.read_bytes()


def test_events_stream_bars_and_resumes_after_the_last_event_id(web_farm, done_film):
    base, fid = web_farm[2].url, done_film[0]
    events = list(sse(base, f"api/v1/films/{fid}/events", "alice"))
    assert events[-1][0] == "end"
    body = [(ident, data) for kind, ident, data in events if kind == "event"]
    assert [int(i) for i, _ in body] == [d["seq"] for _, d in body] == list(range(1, len(body) + 1))
    phases = [d for _, d in body if d["kind"] == "phase"]
    assert len(phases) == 6 and all(p["duration"] > 0 and p["worker_ids"] == ["local"]
                                    for p in phases)
    assert {(p["unit_id"], p["expert"]) for p in phases} == {
        (f"s{i}/u0", e) for i in range(3) for e in ("high", "low")}
    assert body[-1][1]["kind"] == "state" and body[-1][1]["state"] == "SUCCEEDED"
    resumed = [d for kind, _, d in sse(base, f"api/v1/films/{fid}/events", "alice",
                                       headers={"Last-Event-ID": "4"}) if kind == "event"]
    assert [d["seq"] for d in resumed] == list(range(5, len(body) + 1))


def test_frames_stream_decodes_and_resumes(web_farm, done_film):
    base, fid = web_farm[2].url, done_film[0]
    frames = [d for kind, _, d in sse(base, f"api/v1/films/{fid}/frames", "alice")
              if kind == "frame"]
    assert [f["film_index"] for f in frames] == list(range(27))
    assert [(f["scene_id"], f["index"]) for f in frames[8:10]] == [("s0", 8), ("s1", 0)]
    import base64

    image = Image.open(io.BytesIO(base64.b64decode(frames[0]["data"])))
    assert image.format == "JPEG" and image.size == (32, 32)
    later = [d["film_index"] for kind, _, d in sse(base, f"api/v1/films/{fid}/frames", "alice",
                                                   headers={"Last-Event-ID": "20"})
             if kind == "frame"]
    assert later == list(range(21, 27))
    status, body = call(base, f"api/v1/films/{fid}/frames?after=x", "alice")
    assert status == 400 and body["error"]["details"][0]["fieldViolations"][0]["field"] == "after"


def test_controls_go_through_the_api_with_its_rules_and_words(web_farm, connect):
    server, _, web = web_farm
    handle = connect("alice").submit(board(scenes=2, title="controls"))
    fid, name = handle.name.split("/")[1], handle.name
    status, film = call(web.url, f"api/v1/films/{fid}:pause", "alice", method="POST")
    assert status == 200 and film["state"] in ("PAUSED", "QUEUED", "RUNNING")

    def api_refusal(rpc, request):
        with pytest.raises((InvalidArgument, FailedPrecondition)) as refused:
            rpc(request, "alice")
        return str(refused.value)

    status, body = call(web.url, f"api/v1/films/{fid}", "alice", method="PATCH",
                        body={"priority": 101})
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    assert body["error"]["message"] == api_refusal(server.api.update_film, pb.UpdateFilmRequest(
        film=pb.Film(name=name, priority=101), update_mask={"paths": ["priority"]}))
    assert body["error"]["details"][0]["fieldViolations"][0]["field"] == "film.priority"
    status, body = call(web.url, f"api/v1/films/{fid}", "alice", method="PATCH",
                        body={"priority": "high"})
    assert status == 400 and body["error"]["message"] == (
        "film.priority: must be an int32, got 'high'")
    status, film = call(web.url, f"api/v1/films/{fid}", "alice", method="PATCH",
                        body={"priority": 70})
    assert status == 200 and film["priority"] == 70 and handle.get().priority == 70
    rerender = {"scene_id": "s0", "first_frame": 0, "last_frame": 3}
    status, body = call(web.url, f"api/v1/films/{fid}:rerender", "alice", method="POST",
                        body=rerender)
    assert status == 400 and body["error"]["status"] == "FAILED_PRECONDITION"
    assert body["error"]["message"] == api_refusal(server.api.rerender_film, pb.RerenderFilmRequest(
        name=name, **rerender))
    status, body = call(web.url, f"api/v1/films/{fid}:frobnicate", "alice", method="POST")
    assert status == 400 and "unknown method 'frobnicate'" in body["error"]["message"]
    status, body = call(web.url, f"api/v1/films/{fid}:retry", "alice", method="POST", body=b"[1]")
    assert status == 400 and body["error"]["message"] == "body: must be a JSON object"
    status, film = call(web.url, f"api/v1/films/{fid}:cancel", "alice", method="POST")
    assert (status == 200 and film["state"] == "CANCELLED"
            and handle.get().state == pb.Film.STATE_CANCELLED)
    status, body = call(web.url, f"api/v1/films/{fid}:cancel", "alice", method="POST")
    assert status == 400 and body["error"]["message"] == api_refusal(
        server.api.cancel_film, pb.CancelFilmRequest(name=name))


def test_pools_show_the_worker_and_the_planned_step_split(web_farm, connect):
    import time

    web = web_farm[2]

    def fresh(after: float) -> dict:
        """The pools JSON of a snapshot taken after `after` (director clock)."""
        deadline = time.monotonic() + 30
        while (pools := call(web.url, "api/v1/pools", "bob")[1])["time"] <= after:
            assert time.monotonic() < deadline, "the fleet snapshot is not refreshed"
            time.sleep(0.1)
        return pools

    before = fresh(time.time())["split"]["planned_steps"]
    handle = connect("bob").submit(board(scenes=2, title="pools"))
    handle.pause()
    deadline = time.monotonic() + 60
    while handle.get().state != pb.Film.STATE_PAUSED:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pools = fresh(time.time())
    during = pools["split"]["planned_steps"]
    plan = call(web.url, f"api/v1/films/{handle.name.split('/')[1]}/plan", "bob")[1]
    steps = {e: sum(p["stop"] - p["start"] for p in plan["phases"] if p["expert"] == e) * 2
             for e in ("high", "low")}
    assert {e: during[e] - before.get(e, 0) for e in steps} == steps
    assert steps["high"] + steps["low"] == 2 * 4  # 2 scenes x 4 solver steps, one segment each
    assert steps["high"] > steps["low"] > 0
    assert [(w["worker_id"], w["holds"]) for w in pools["workers"]] == [  # "<model>/<part>"
        ("local", ["tiny/high", "tiny/low", "tiny/text", "tiny/vae"])]
    assert pools["split"]["pool_slots"] == {"high": 1, "low": 1}
    assert [p["pool"] for p in pools["pools"]] == ["local"]
    handle.cancel()


def test_open_server_needs_no_token_and_serves_tenant_default(web_farm, done_film):
    from farm.web.server import serve_web

    server = web_farm[0]
    web = serve_web(server.api, Authenticator(), "127.0.0.1", 0)
    try:
        assert call(web.url, "api/v1/whoami")[1] == {"tenant": "default", "open": True,
                                                     "models": ["tiny"]}
        assert done_film[0] not in [f["id"] for f in call(web.url, "api/v1/films")[1]]
    finally:
        web.stop()
