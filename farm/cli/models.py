"""`reelfarm models init-tiny DIR`: write a tiny random-weight model folder."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from farm.model.tiny import TINY_KINDS

    p = sub.add_parser("models", help="manage model folders")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    init = msub.add_parser("init-tiny", help="write a tiny random-weight Wan model (diffusers format)")
    init.add_argument("directory")
    init.add_argument("--kind", choices=TINY_KINDS, default="t2v-a14b")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=run_init_tiny)


def run_init_tiny(args: argparse.Namespace) -> int:
    from farm.cli.quiet import quiet_libraries
    from farm.model.tiny import init_tiny

    if args.seed < 0:
        raise SystemExit(f"--seed must be >= 0, got {args.seed}")
    quiet_libraries()
    path = init_tiny(args.directory, args.kind, args.seed)
    print(f"wrote tiny {args.kind} model (seed {args.seed}) to {path}")
    return 0
