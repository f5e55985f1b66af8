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


def connect(args: argparse.Namespace):
    from farm.client import Client

    return Client(args.server, token=args.token or os.environ.get(TOKEN_ENV) or None)


def print_api_error(exc) -> int:
    """Print an SDK error (with every field violation); the exit status for it."""
    from farm.client import InvalidArgumentError

    print(f"error: {exc.message}", file=sys.stderr)
    if isinstance(exc, InvalidArgumentError):
        for field, description in exc.violations:
            print(f"  {field}: {description}", file=sys.stderr)
        return 2
    return 1
