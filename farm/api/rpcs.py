"""The FilmService RPCs as one table, read from the service descriptor.

Both adapters serve the same RPCs over FilmApi: the grpc.server servicer (farm.api.server)
and the Ray Serve ingress (serving.director, behind Serve's gRPC proxy). Neither writes a
forwarder per RPC: each binds its methods from this table with `bind_rpcs`, so an RPC
added to the proto is served by both once FilmApi has its method (a test checks that).

    proto                              FilmApi method        response
    rpc CreateFilm(...) returns Film   create_film(req, tenant)          Film
    rpc WatchFilm(...) returns stream  watch_film(req, tenant, alive=)   iterator
    rpc UploadMedia(stream ...)        upload_media(requests, tenant)    Media
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from farm.api.protos import pb


@dataclass(frozen=True)
class Rpc:
    name: str  # the RPC, e.g. "CreateFilm": the adapter's method name
    method: str  # FilmApi's method, e.g. "create_film"
    streaming: bool  # server streaming
    response: type  # the response message class (an adapter's empty reply on error)
    # Client streaming (UploadMedia): FilmApi's method takes an iterator of requests.
    client_streaming: bool = False


def film_service_rpcs() -> tuple[Rpc, ...]:
    service = pb.DESCRIPTOR.services_by_name["FilmService"]
    return tuple(Rpc(name=m.name, method=_snake(m.name), streaming=m.server_streaming,
                     response=getattr(pb, m.output_type.name),
                     client_streaming=m.client_streaming)
                 for m in service.methods)


def bind_rpcs(cls: type, make: Callable[[Rpc], Callable]) -> type:
    """Give `cls` one method per RPC, `make(rpc)`; a class decorator's body."""
    for rpc in film_service_rpcs():
        method = make(rpc)
        method.__name__ = method.__qualname__ = rpc.name
        setattr(cls, rpc.name, method)
    return cls


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
