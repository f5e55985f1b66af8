"""Shared by the commands that talk to a server: --server/--token, errors, names."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_SERVER = "127.0.0.1:50051"
# The only place the CLI reads a token from the environment (never logged or printed).
TOKEN_ENV = "REELFARM_TOKEN"


def add_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=DEFAULT_SERVER, metavar="HOST:PORT",
                   help=f"reelfarm API address (default {DEFAULT_SERVER})")
    p.add_argument("--token", help=f"bearer token of your tenant (default: ${TOKEN_ENV})")
    p.add_argument("--wait-for-server", type=_seconds, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a server that is still starting (default 0: "
                        "fail after the SDK's own retries, about 3 s)")
    p.add_argument("--tls", action="store_true", help="connect with TLS (system CA roots)")
    p.add_argument("--tls-ca", help="CA certificate of the server (implies --tls)")
    p.add_argument("--tls-cert", help="client certificate, for servers that require one")
    p.add_argument("--tls-key", help="key of the client certificate")


def connect(args: argparse.Namespace):
    from farm.api.tls import ClientTls
    from farm.client import Client

    tls = None
    if args.tls or args.tls_ca or args.tls_cert:
        tls = ClientTls(args.tls_ca, args.tls_cert, args.tls_key)
    client = Client(args.server, token=args.token or os.environ.get(TOKEN_ENV) or None, tls=tls)
    if args.wait_for_server:
        try:
            client.wait_until_ready(args.wait_for_server)
        except BaseException:
            client.close()
            raise
    return client


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: a number of seconds >= 0")
    return value


def print_api_error(exc) -> int:
    """Print an SDK error (with every field violation); the exit status for it."""
    from farm.client import InvalidArgumentError

    print(f"error: {exc.message}", file=sys.stderr)
    if isinstance(exc, InvalidArgumentError):
        for field, description in exc.violations:
            print(f"  {field}: {description}", file=sys.stderr)
        return 2
    return 1
