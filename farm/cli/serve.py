"""`reelfarm serve`: the gRPC API over the embedded farm (`--local`), or the Ray Serve app
on a Ray cluster started here or joined (`--config CONFIG [--address ADDR]`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from farm.cli.signing import add_signing_flags, load_signer

DEFAULT_DB = "sqlite:///.reelfarm/reelfarm.db"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve", help="serve the gRPC API: embedded (--local) or on Ray (--config)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--local", action="store_true",
                      help="run the farm in this process")
    mode.add_argument("--config", help="a Ray Serve config YAML (see serving/serve_config.yaml): "
                                       "deploy the reelfarm app on Ray")
    parser.add_argument("--address", help="with --config: join this Ray cluster (e.g. auto or "
                                           "HOST:6379; default RAY_ADDRESS if set) instead of "
                                           "starting a private one here")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; others need --tokens)")
    parser.add_argument("--port", type=int, default=50051, help="port (0: any free port)")
    parser.add_argument("--model", action="append", metavar="MODEL",
                        help="with --local: serve this model, by the name films give "
                             "(repeatable): a built-in (tiny, toy, tiny-<family>), a model "
                             "folder or a Hugging Face repo id OWNER/NAME[@REVISION] in the "
                             "local cache. Default: every built-in model. Each loads the first "
                             "time a film asks for it")
    parser.add_argument("--artifacts", default=".reelfarm/artifacts",
                        help="folder for frames, mp4s and phase checkpoints "
                        "(default .reelfarm/artifacts)")
    parser.add_argument("--db", default=DEFAULT_DB, metavar="URL",
                        help="SQLAlchemy URL of the job store: films, events, render log, "
                             f"checkpoints (default {DEFAULT_DB}, a SQLite file in the working "
                             "directory; postgresql+psycopg://... for a server). Films survive a "
                             "restart on the same --db and --artifacts.")
    parser.add_argument("--tokens",
                        help="file of `<tenant> <token>` lines; without it the API is open")
    parser.add_argument("--tls-cert", help="serve TLS with this certificate (PEM) ...")
    parser.add_argument("--tls-key", help="... and its key (PEM)")
    parser.add_argument("--tls-client-ca",
                        help="require client certificates signed by this CA (mTLS)")
    parser.add_argument("--max-films", type=int, default=100, help="unfinished films at once")
    parser.add_argument("--max-films-per-tenant", type=int, default=20,
                        help="unfinished films per tenant")
    parser.add_argument("--max-queued-frames-per-tenant", type=int, default=100_000,
                        help="frames not yet delivered, summed over a tenant's unfinished films")
    parser.add_argument("--max-concurrent-rpcs", type=int, default=32,
                        help="calls served at once (each open stream holds one); beyond it "
                             "RESOURCE_EXHAUSTED")
    parser.add_argument("--max-streams-per-tenant", type=int, default=32,
                        help="open WatchFilm/StreamFrames/GetArtifact calls per tenant")
    add_signing_flags(parser)
    parser.add_argument("--require-rights", action="store_true",
                        help="refuse films whose photo, video or voice inputs were uploaded "
                             "without a rights statement (who holds the rights or consented)")
    parser.add_argument("--max-media-bytes", type=int, default=512 * 1024 * 1024, metavar="N",
                        help="largest media file an upload may be (default 512 MiB)")
    parser.add_argument("--max-media-seconds", type=float, default=600.0, metavar="S",
                        help="longest video or recording an upload may be (default 600 s)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (same --host)")
    parser.add_argument("--web-port", type=int, metavar="PORT",
                        help="serve the web monitor at http://HOST:PORT/ (same --host, tokens and "
                             "TLS: https with --tls-cert); "
                             "with --config: the Serve HTTP port it is served on "
                             "(default the config's)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="json: one object per line with film/scene/unit/phase ids")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.config:
        for flag, value in (("--model", args.model), ("--signing-key", args.signing_key),
                            ("--require-rights", args.require_rights)):
            if value:
                print(f"error: {flag} goes with --local; a --config sets it in its app args "
                      "(`models`, `signing`, `media`)", file=sys.stderr)
                return 2
        from serving.cli import serve_config

        return serve_config(args.config, args.address, args.web_port)
    from farm.observe.logs import configure_logging, quiet_libraries

    try:
        models = _models(args)
        auth, tls = _auth(args), _tls(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The farm's own chain, without flags, beside the artifacts (.reelfarm/signing).
    args.signer, problem = load_signer(args, Path(args.artifacts).parent / "signing")
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    quiet_libraries()
    configure_logging(args.log_format, args.log_level)
    sink, metrics = _metrics(args)
    started = _start_api(args, models, auth, tls, metrics)
    if isinstance(started, int):
        return started
    server, director = started
    names = ", ".join(m.ref for m in models)
    print(f"reelfarm API on {server.address} (models {names}; each loads when a "
          f"film first needs it; artifacts {args.artifacts}, db {_safe_url(args.db)})", flush=True)
    if sink is not None:
        from farm.observe.http import serve_metrics

        http = serve_metrics(sink, args.metrics_port, args.host)
        print(f"metrics on http://{args.host}:{http.server_port}/metrics", flush=True)
    web = None
    if args.web_port is not None:
        from farm.web.server import serve_web

        try:
            web = serve_web(server.api, auth, args.host, args.web_port, tls)
        except OSError as exc:
            print(f"error: --web-port: {exc}", file=sys.stderr)
            server.stop()
            director.stop()
            return 2
        print(f"web monitor on {web.url}", flush=True)
    _say_auth(auth)
    _wait_for_signal()
    print("stopping", flush=True)
    for part in (web, server, director):
        if part is not None:
            part.stop()
    return 0


def _models(args: argparse.Namespace) -> list:
    """The models to serve (--model, else every built-in), each resolved now (ModelSource):
    a bad name fails before anything starts, naming the flag and the built-in names; a
    Hugging Face repo id is looked up in the cache of this command's environment."""
    import os

    from farm.model.hub import cache_from_env
    from farm.model.loader import BUILTIN_MODELS, resolve_model

    hub_cache = cache_from_env(os.environ)
    sources = []
    for ref in dict.fromkeys(args.model or BUILTIN_MODELS):
        try:
            sources.append(resolve_model(ref, hub_cache))
        except ValueError as exc:
            raise ValueError(f"--model: {exc}") from None
    return sources


def _media_limits(args: argparse.Namespace):
    from farm.media.library import MediaLimits

    if args.max_media_bytes < 1:
        raise ValueError(f"--max-media-bytes: must be at least 1, got {args.max_media_bytes}")
    if not args.max_media_seconds > 0:
        raise ValueError(f"--max-media-seconds: must be > 0, got {args.max_media_seconds}")
    return MediaLimits(args.max_media_bytes, args.max_media_seconds)


def _auth(args: argparse.Namespace):
    from farm.api.auth import Authenticator

    try:
        return Authenticator.from_file(args.tokens) if args.tokens else Authenticator()
    except (OSError, ValueError) as exc:
        raise ValueError(f"--tokens: {exc}") from None


def _metrics(args: argparse.Namespace):
    """(sink, FarmMetrics) with --metrics-port, else (None, None)."""
    if args.metrics_port is None:
        return None, None
    from farm.observe.instruments import FarmMetrics
    from farm.observe.metrics import PrometheusSink

    sink = PrometheusSink()
    return sink, FarmMetrics(sink)


def _start_api(args: argparse.Namespace, models: list, auth, tls, metrics):
    """(grpc server, director) started, or the exit code after printing why not."""
    from sqlalchemy.exc import SQLAlchemyError

    from farm.api.server import ServerConfig, local_server

    try:
        media_limits = _media_limits(args)
        return local_server(
            models, args.artifacts, auth,
            ServerConfig(host=args.host, port=args.port, tls=tls,
                         max_workers=args.max_concurrent_rpcs,
                         max_concurrent_rpcs=args.max_concurrent_rpcs),
            max_streams_per_tenant=args.max_streams_per_tenant,
            media_limits=media_limits, require_rights=args.require_rights, signer=args.signer,
            db=args.db, metrics=metrics, max_unfinished_films=args.max_films,
            max_unfinished_per_tenant=args.max_films_per_tenant,
            max_queued_frames_per_tenant=args.max_queued_frames_per_tenant)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:  # the job store: a bad URL, a database not reachable
        print(f"error: --db: {str(exc).replace(args.db, _safe_url(args.db))}", file=sys.stderr)
        return 2


def _say_auth(auth) -> None:
    if auth.is_open:
        print("auth: OPEN - no --tokens given; every caller is tenant 'default'", flush=True)
    else:
        print(f"auth: bearer tokens for {len(auth.tenants)} tenant(s)", flush=True)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _tls(args: argparse.Namespace):
    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    from farm.api.tls import ServerTls

    return ServerTls(args.tls_cert, args.tls_key, args.tls_client_ca)


def _safe_url(url: str) -> str:
    """The db URL without its password (it may hold one; never print it)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL: say nothing of it
        return "(unparsable URL)"
