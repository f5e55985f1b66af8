"""The web monitor as an ASGI app (Starlette): a page, its static assets, JSON endpoints
and server-sent event streams, over a Monitor (FilmApi + the director).

    GET  /                                  the page (static/index.html; no data, no token)
    GET  /static/...                        its script and style (shipped in the package)
    GET  api/v1/whoami                      the caller's tenant; whether the server is open
    GET  api/v1/films        films:watch    the tenant's films (JSON / SSE `films` on change)
    GET  api/v1/films/F                     one film (GetFilm) with its ETA
    PATCH api/v1/films/F     {"priority"}   UpdateFilm, update_mask priority
    POST api/v1/films/F:cancel|:pause|:resume|:retry|:rerender {scene_id, first_frame, last_frame}
    GET  api/v1/films/F/plan                scenes, units, segments, phases
    GET  api/v1/films/F/events     (SSE)    the film's events (`event`), resumable (Last-Event-ID)
    GET  api/v1/films/F/frames     (SSE)    decoded frames as JPEG (`frame`), resumable
    GET  api/v1/films/F/executions          the render log (ListExecutions)
    GET  api/v1/films/F/deliverables        the mp4 and provenance manifests that exist
    GET  api/v1/films/F/mp4                 the mp4 (GetArtifact)
    GET  api/v1/pools        pools:watch    pools, workers, step split, failures (JSON / SSE)

Every api/ call needs `Authorization: Bearer <token>` (the API's tokens) unless the
server runs open; errors are `{"error": {code, status, message, details}}` with the
API's status and message. Paths are relative, so the app works under a prefix (Ray
Serve's route prefix in the cluster).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from farm.api.errors import InvalidArgument, Unauthenticated
from farm.spec.errors import FieldError
from farm.web import sse
from farm.web.monitor import Monitor
from farm.web.views import error_json

log = logging.getLogger("reelfarm.web")
STATIC = Path(__file__).parent / "static"
# Scripts, styles, images and connections from this origin only; frames are data: URLs.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; "
                                 b"media-src 'self' blob:; object-src 'none'; base-uri 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# Seconds between snapshots of the polled streams (films list, pools).
POLL_S = 0.5


def create_app(monitor: Monitor, *, stream_threads: int = 64) -> Any:
    """The ASGI app. `stream_threads`: threads the SSE streams may hold at once (each
    open film page holds two while it waits for events and frames)."""
    limiter = anyio.CapacityLimiter(stream_threads)
    h = _Handlers(monitor, limiter)
    routes = [
        Route("/", h.index),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/v1/whoami", h.whoami),
        Route("/api/v1/films", h.films),
        Route("/api/v1/films:watch", h.films_watch),
        Route("/api/v1/pools", h.pools),
        Route("/api/v1/pools:watch", h.pools_watch),
        Route("/api/v1/films/{film}", h.film, methods=["GET", "PATCH"]),
        Route("/api/v1/films/{film}:{verb}", h.control, methods=["POST"]),
        Route("/api/v1/films/{film}/plan", h.plan),
        Route("/api/v1/films/{film}/events", h.events),
        Route("/api/v1/films/{film}/frames", h.frames),
        Route("/api/v1/films/{film}/executions", h.executions),
        Route("/api/v1/films/{film}/deliverables", h.deliverables),
        Route("/api/v1/films/{film}/mp4", h.mp4),
    ]
    return _headers(_slash(Starlette(routes=routes)))


class _Handlers:
    def __init__(self, monitor: Monitor, limiter: anyio.CapacityLimiter):
        self.m, self.limiter = monitor, limiter

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _json(self, request: Request, method, *args: Any, body: bool = False) -> Response:
        """`method(tenant, *args[, JSON body])` in a thread -> JSON; any error -> the
        API's status (the token is checked first, then the body)."""
        try:
            tenant = self.m.tenant(request.headers.get("authorization"))
            if body:
                args = (*args, _parse(await request.body()))
            result = await run_in_threadpool(method, tenant, *args)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            return _error(exc)
        return JSONResponse(result, headers={"Cache-Control": "no-store"})

    async def whoami(self, request: Request) -> Response:
        return await self._json(request, self.m.whoami)

    async def films(self, request: Request) -> Response:
        return await self._json(request, self.m.films)

    async def pools(self, request: Request) -> Response:
        return await self._json(request, self.m.pools)

    async def film(self, request: Request) -> Response:
        film = request.path_params["film"]
        if request.method == "PATCH":
            return await self._json(request, self.m.set_priority, film, body=True)
        return await self._json(request, self.m.film, film)

    async def control(self, request: Request) -> Response:
        return await self._json(request, self.m.control, request.path_params["film"],
                                request.path_params["verb"], body=True)

    async def plan(self, request: Request) -> Response:
        return await self._json(request, self.m.plan, request.path_params["film"])

    async def executions(self, request: Request) -> Response:
        return await self._json(request, self.m.executions, request.path_params["film"])

    async def deliverables(self, request: Request) -> Response:
        return await self._json(request, self.m.deliverables, request.path_params["film"])

    async def mp4(self, request: Request) -> Response:
        film = request.path_params["film"]
        try:
            tenant = self.m.tenant(request.headers.get("authorization"))
            chunks = await run_in_threadpool(self.m.mp4, tenant, film)
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        return StreamingResponse(chunks, media_type="video/mp4", headers={
            "Content-Disposition": f'attachment; filename="{film}.mp4"',
            "Cache-Control": "no-store"})

    async def films_watch(self, request: Request) -> Response:
        return await self._polled(request, self.m.films, "films")

    async def pools_watch(self, request: Request) -> Response:
        return await self._polled(request, self.m.pools, "pools")

    async def _polled(self, request: Request, method, event: str) -> Response:
        try:
            tenant = self.m.tenant(request.headers.get("authorization"))
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        return StreamingResponse(sse.polled(lambda: method(tenant), event, POLL_S, self.limiter),
                                 media_type="text/event-stream", headers=sse.HEADERS)

    async def events(self, request: Request) -> Response:
        return await self._follow(request, self.m.events, "event",
                                  lambda e: sse.message(e, "event", e["seq"]), 0)

    async def frames(self, request: Request) -> Response:
        return await self._follow(request, self.m.frames, "frame",
                                  lambda f: sse.message(f, "frame", f["film_index"]), -1)

    async def _follow(self, request: Request, method, what: str, encode, first: int) -> Response:
        """A followed stream from `after` (query) or Last-Event-ID (a reconnect): events
        after that sequence number, frames after that film frame index."""
        alive = threading.Event()
        alive.set()
        try:
            tenant = self.m.tenant(request.headers.get("authorization"))
            after = _after(request, first)
            start = after if what == "event" else after + 1
            items = await run_in_threadpool(method, tenant, request.path_params["film"], start,
                                            alive.is_set)
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        return StreamingResponse(sse.from_thread(items, alive, encode, self.limiter),
                                 media_type="text/event-stream", headers=sse.HEADERS)


def _after(request: Request, default: int) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -2
    if value < default:
        raise InvalidArgument([FieldError("after",
                                          f"must be an integer >= {default}, got {raw!r}")])
    return value


def _parse(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise InvalidArgument([FieldError("body", "must be a JSON object")])
    return data


def _error(exc: Exception) -> Response:
    if not isinstance(exc, Unauthenticated) and error_json(exc)[0] == 500:
        log.error("internal error", exc_info=exc)
    status, body = error_json(exc)
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reelfarm"'
    return JSONResponse(body, status_code=status, headers=headers)


def _slash(app: Any) -> Any:
    """`<prefix>` without its trailing slash redirects to `<prefix>/`, so the page's
    relative URLs resolve under the prefix."""
    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            path = scope["path"]
            if path in ("", root) and root:
                await RedirectResponse(root + "/")(scope, receive, send)
                return
        await app(scope, receive, send)
    return wrapped


def _headers(app: Any) -> Any:
    async def wrapped(scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)
        await app(scope, receive, send_with_headers)
    return wrapped
