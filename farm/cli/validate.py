"""`reelfarm validate STORYBOARD`: check a film without rendering (exit 0 valid, 2 not)."""

from __future__ import annotations

import argparse

from farm.cli.common import load_film, print_spec_error
from farm.spec.errors import SpecError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a storyboard without rendering")
    p.add_argument("storyboard", help="storyboard file (.yaml or .json)")
    p.add_argument("--model", help="check against this model instead of the storyboard's")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        film = load_film(args.storyboard, model=args.model)
    except SpecError as exc:
        print_spec_error(exc, args.storyboard)
        return 2
    print(f"{args.storyboard}: valid ({len(film.scenes)} scenes, {film.num_frames} frames, "
          f"{film.profile.family}, {film.num_steps} steps)")
    return 0
