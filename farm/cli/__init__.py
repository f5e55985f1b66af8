"""`reelfarm` command line: render films, make tiny models, validate storyboards, serve
the gRPC API and talk to it (submit, films)."""

from __future__ import annotations

import argparse
import sys

from farm import __version__


def build_parser() -> argparse.ArgumentParser:
    from farm.cli import direct, films, k8s, models, render, serve, submit, validate, verify

    parser = argparse.ArgumentParser(prog="reelfarm", description=(
        "A distributed streaming render farm for generative video (Wan2.2 MoE)."))
    parser.add_argument("--version", action="version", version=f"reelfarm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render.add_parser(sub)
    models.add_parser(sub)
    validate.add_parser(sub)
    verify.add_parser(sub)
    serve.add_parser(sub)
    submit.add_parser(sub)
    films.add_parser(sub)
    k8s.add_parser(sub)
    direct.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
