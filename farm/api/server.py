"""The grpc.server adapter: FilmService over FilmApi, plus health checking and reflection.

    client ──gRPC──> FilmServicer (auth -> tenant, errors -> status) ──> FilmApi ──> Director
                     grpc.health.v1.Health, grpc.reflection.v1alpha.ServerReflection

Limits, set deliberately (docs/api.md repeats them):
- messages: 4 MiB each way. Requests are storyboards (kilobytes); every streamed
  response carries at most 1 MiB of data (chunks.CHUNK_BYTES), so no legitimate message
  comes near the limit, and a bigger one is refused before it is buffered.
- concurrency: a thread per call (streams hold theirs while they follow a film);
  `max_concurrent_rpcs` beyond the pool answers RESOURCE_EXHAUSTED at once instead of
  queueing calls behind films that render for hours.
- keepalive: the server pings a connection idle for 30 s and drops it if no answer
  comes in 10 s, so a vanished client of a long WatchFilm/StreamFrames frees its thread;
  it accepts client pings down to every 10 s (the SDK pings every 30 s).
- deadlines: the server sets none (a stream lasts as long as the film); clients set them
  per call (the SDK: 30 s for unary calls, none for streams, which keepalive guards).
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from farm.api.auth import Authenticator
from farm.api.protos import pb, pb_grpc
from farm.api.rpcs import Rpc, bind_rpcs
from farm.api.service import FilmApi
from farm.api.status import internal_status, to_status
from farm.api.tls import ServerTls

log = logging.getLogger("farm.api")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FilmService"].full_name
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    # 0 picks a free port (ApiServer.port tells which).
    port: int = 50051
    # Threads serving calls, and calls accepted at once (RESOURCE_EXHAUSTED beyond).
    max_workers: int = 32
    max_concurrent_rpcs: int = 32
    # Seconds that in-flight calls get to finish when the server stops.
    grace_seconds: float = 3.0
    # TLS (farm.api.tls.ServerTls); None serves plaintext (fine on loopback).
    tls: ServerTls | None = None

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            # A watch may see no event for minutes: pings must not need data in between.
            ("grpc.http2.max_pings_without_data", 0),
            # Fail if the port is taken (Linux would otherwise let two servers share it).
            ("grpc.so_reuseport", 0),
        ]


class FilmServicer(pb_grpc.FilmServiceServicer):
    """Thin: resolve the tenant, call FilmApi, turn a domain error into a status. One
    method per FilmService RPC, bound from the descriptor's table (farm.api.rpcs)."""

    def __init__(self, api: FilmApi, auth: Authenticator):
        self.api, self.auth = api, auth

    def _unary(self, method: Callable, request, context: grpc.ServicerContext):
        try:
            return method(request, self.auth.tenant(context.invocation_metadata()))
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            _abort(exc, context)

    def _stream(self, method: Callable, request, context: grpc.ServicerContext,
                follows: bool) -> Iterator:
        try:
            tenant = self.auth.tenant(context.invocation_metadata())
            kwargs = {"alive": context.is_active} if follows else {}
            yield from method(request, tenant, **kwargs)
        except Exception as exc:  # noqa: BLE001
            _abort(exc, context)


def _servicer_method(rpc: Rpc) -> Callable:
    """FilmServicer's method for `rpc`. A stream that follows a film (its FilmApi method
    takes `alive`) ends when the client goes away. A client stream (UploadMedia) is a
    unary call whose request is grpc's iterator of the client's messages."""
    if rpc.streaming and rpc.client_streaming:
        raise NotImplementedError(f"{rpc.name}: no FilmService RPC streams both ways")
    if not rpc.streaming:
        def unary(self: FilmServicer, request, context: grpc.ServicerContext):
            return self._unary(getattr(self.api, rpc.method), request, context)
        return unary
    follows = "alive" in inspect.signature(getattr(FilmApi, rpc.method)).parameters

    def stream(self: FilmServicer, request, context: grpc.ServicerContext) -> Iterator:
        yield from self._stream(getattr(self.api, rpc.method), request, context, follows)
    return stream


bind_rpcs(FilmServicer, _servicer_method)


def _abort(exc: Exception, context: grpc.ServicerContext) -> None:
    status = to_status(exc)
    if status is None:
        log.exception("internal error")
        status = internal_status()
    context.abort_with_status(rpc_status.to_status(status))


class ApiServer:
    """A started-on-demand grpc.server with FilmService, health and reflection."""

    def __init__(self, api: FilmApi, auth: Authenticator, config: ServerConfig = ServerConfig()):
        self.api, self.auth, self.config = api, auth, config
        self.health = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(config.max_workers, "reelfarm-rpc"),
                                  options=config.options(),
                                  maximum_concurrent_rpcs=config.max_concurrent_rpcs)
        pb_grpc.add_FilmServiceServicer_to_server(FilmServicer(api, auth), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME], self.server)
        address = f"{_host(config.host)}:{config.port}"
        self.port = (self.server.add_secure_port(address, config.tls.credentials()) if config.tls
                     else self.server.add_insecure_port(address))
        if self.port == 0:
            raise OSError(f"cannot listen on {config.host}:{config.port}")

    @property
    def address(self) -> str:
        return f"{_host(self.config.host)}:{self.port}"

    def start(self) -> ApiServer:
        self.server.start()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        return self

    def stop(self, grace: float | None = None) -> None:
        self.health.enter_graceful_shutdown()  # health checks answer NOT_SERVING meanwhile
        self.server.stop(self.config.grace_seconds if grace is None else grace).wait()

    def wait(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _edge_checks(sources, limits):
    """The farm's limits for a film of one of `sources` (served name -> ModelSource), by
    the film's model (farm.spec.limits.Limits; defaults if None)."""
    from farm.model.footprint import edge_checks
    from farm.spec.limits import Limits

    limits = limits or Limits()
    return lambda film: edge_checks(film, sources[film.model], limits)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def local_server(models, artifacts: str | Path, auth: Authenticator,
                 config: ServerConfig = ServerConfig(), *, db: str | None = None,
                 metrics=None, edge_limits=None, max_streams_per_tenant: int = 32,
                 media_limits=None, require_rights: bool = False, signer=None,
                 **limits: int):
    """The embedded runtime behind the API: a local Director serving `models` (a name or
    several: built-in names, model folders; the first is the default of films naming
    none). Each model's weights load the first time a film needs them.

    `db`: SQLAlchemy URL of the job store; with one, films (and their render log) survive
    a restart on the same `db` and `artifacts`, and unfinished films resume. `limits`:
    DirectorConfig's (max_unfinished_films, ..., max_queued_frames_per_tenant). Uploaded
    media are kept under `artifacts`/media (farm.media.library; `media_limits` per file);
    `require_rights`: refuse films whose photo, video or voice inputs have no rights
    statement. `signer` (farm.media.credentials) signs the content credentials of every
    frame and mp4 served; None: the farm's local chain beside `artifacts` (signing/).
    Returns (server, director), both started; stop the server first, then the director.
    """
    from farm.director.delivery import WeightHashes, default_signer, served_delivery
    from farm.local import local_director, served_models
    from farm.media.library import MediaLibrary, MediaLimits

    if auth.is_open and not is_loopback(config.host):
        raise ValueError(f"refusing to serve {config.host} without tokens: anyone who can reach "
                         "it could use the farm; give --tokens, or serve on 127.0.0.1")
    sources = served_models(models)
    media = MediaLibrary(artifacts, media_limits or MediaLimits())
    delivery = served_delivery(signer or default_signer(artifacts), WeightHashes(sources),
                               media.describe)
    director = local_director(list(sources.values()), artifacts, db=db, metrics=metrics,
                              delivery=delivery, **limits)
    try:
        server = ApiServer(FilmApi(director, {name: s.family for name, s in sources.items()},
                                   checks=_edge_checks(sources, edge_limits),
                                   max_streams_per_tenant=max_streams_per_tenant,
                                   media=media, require_rights=require_rights), auth, config)
    except BaseException:
        director.stop()
        raise
    director.start()
    return server.start(), director
