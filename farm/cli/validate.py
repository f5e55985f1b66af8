"""`reelfarm validate STORYBOARD|TIMELINE`: check a film without rendering (exit 0 valid, 2 not)."""

from __future__ import annotations

import argparse

from farm.cli.common import add_film_flags, load_from_args
from farm.spec.characters import character_log
from farm.spec.dialogue import count_scenes


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a storyboard or timeline without rendering")
    p.add_argument("storyboard", help="storyboard (.yaml, .json) or timeline (.otio, .otioz, "
                                      ".otiod, .edl)")
    add_film_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (loaded := load_from_args(args)) is None:
        return 2
    film, gaps = loaded.film, loaded.cut.num_frames - loaded.film.num_frames
    extra = f" + {gaps} gap frames" if gaps else ""
    print(f"{args.storyboard}: valid ({count_scenes(film.scenes)}, {film.num_frames} frames"
          f"{extra}, {film.width}x{film.height} at {film.fps} fps, {film.profile.family}, "
          f"{film.num_steps} steps)")
    for line in character_log(film.scenes):  # how each scene takes its characters
        print(line)
    return 0
