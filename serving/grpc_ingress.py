"""The FilmService RPCs for Ray Serve's gRPC proxy, over the same FilmApi as `serve --local`.

    client ──gRPC──> Serve gRPC proxy ──> DirectorServer.CreateFilm(request, grpc_context)
                                                 └─> ServeRpc ─> FilmApi ─> Director

Serve calls deployment methods named like the RPCs; this adapter resolves the tenant from
the metadata, calls FilmApi, and turns a domain error into the call's status (with the
google.rpc details in the trailing metadata, as grpc.server would send them). Health
`Check` is answered too; server reflection is served only by `serve --local`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from farm.api.auth import Authenticator
from farm.api.service import FilmApi
from farm.api.status import internal_status, to_status

log = logging.getLogger("reelfarm.ingress")


class ServeRpc:
    def __init__(self, api: FilmApi, auth: Authenticator):
        self.api, self.auth = api, auth

    def unary(self, method: Callable, request: Any, context: Any, empty: Any) -> Any:
        try:
            return method(request, self.auth.tenant(context.invocation_metadata()))
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            _fail(exc, context)
            return empty

    def stream(self, method: Callable, request: Any, context: Any) -> Iterator[Any]:
        try:
            yield from method(request, self.auth.tenant(context.invocation_metadata()))
        except Exception as exc:  # noqa: BLE001
            _fail(exc, context)

    async def client_stream(self, method: Callable, requests: AsyncIterator[Any], context: Any,
                            empty: Any) -> Any:
        """A client-streaming call (UploadMedia): FilmApi reads the messages as a plain
        iterator in a worker thread while this coroutine feeds them from Serve's stream
        (a few in flight: the upload is never held in memory). If FilmApi stops reading
        early (a limit broken), so does the feeding."""
        inbox: queue.Queue = queue.Queue(maxsize=4)
        end, finished = object(), threading.Event()

        def call() -> Any:
            try:
                return self.unary(method, iter(inbox.get, end), context, empty)
            finally:
                finished.set()

        result = asyncio.create_task(asyncio.to_thread(call))
        async for request in requests:
            if not await asyncio.to_thread(_offer, inbox, request, finished):
                break
        await asyncio.to_thread(_offer, inbox, end, finished)
        return await result

    @staticmethod
    def health(request: health_pb2.HealthCheckRequest) -> health_pb2.HealthCheckResponse:
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _offer(inbox: queue.Queue, item: Any, finished: threading.Event) -> bool:
    """Put `item` for the reader; False once the reader has finished instead."""
    while not finished.is_set():
        try:
            inbox.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _fail(exc: Exception, context: Any) -> None:
    status = to_status(exc)
    if status is None:
        log.exception("internal error")
        status = internal_status()
    grpc_status = rpc_status.to_status(status)
    context.set_code(grpc_status.code if isinstance(grpc_status.code, grpc.StatusCode)
                     else grpc.StatusCode(grpc_status.code))
    context.set_details(grpc_status.details)
    context.set_trailing_metadata(list(grpc_status.trailing_metadata))
