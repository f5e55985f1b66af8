"""`reelfarm render STORYBOARD -o OUT.mp4`: render a film on this machine.

The farm runs in the background (an engine thread, or a local Ray cluster); this thread
reads the film's frames in film order and writes each to the mp4 (and PNGs) as it arrives.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from farm.cli.common import load_film, print_spec_error
from farm.spec.errors import SpecError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a storyboard to an mp4 on this machine")
    p.add_argument("storyboard", help="storyboard file (.yaml or .json)")
    p.add_argument("-o", "--output", required=True, help="mp4 file to write")
    p.add_argument("--model", help="tiny | tiny-<family> | a diffusers-format model folder "
                                   "(overrides the storyboard's model)")
    p.add_argument("--frames-dir", help="also write every frame as PNG: DIR/<scene>/<scene>.NNNN.png")
    p.add_argument("--steps", type=int, help="solver steps (overrides the storyboard)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="transformer dtype (default: float32 on cpu, bfloat16 otherwise)")
    p.add_argument("--workers", choices=("single", "split"), default="single",
                   help="inline: one worker holding everything, or one per expert/VAE/text encoder")
    p.add_argument("--executor", choices=("inline", "ray"), default="inline",
                   help="inline: this process (fast start); ray: a local Ray cluster running "
                        "the Serve app, as on a GPU farm")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        film = load_film(args.storyboard, model=args.model, steps=args.steps)
    except SpecError as exc:
        print_spec_error(exc, args.storyboard)
        return 2
    import torch
    from rich.console import Console

    from farm.cli.progress import LiveProgress, RenderStats
    from farm.cli.quiet import quiet_libraries
    from farm.cli.render_sources import InlineSource, RaySource, cluster_storyboard
    from farm.media.writers import Mp4Writer, write_png

    quiet_libraries()
    console = Console(stderr=True)
    if args.executor == "ray":
        console.print("starting a local Ray cluster (about 30 s on 2 cores) ...")
        source = RaySource(film, cluster_storyboard(args.storyboard, film), torch.get_num_threads())
        console.print(f"cluster ready after {source.startup_s:.1f} s")
    else:
        dtype = getattr(torch, args.dtype or ("float32" if args.device == "cpu" else "bfloat16"))
        source = InlineSource(film, args.device, dtype, args.workers)
    stats = RenderStats(film)
    try:
        with LiveProgress(console, source.phases_total, film.num_frames) as live, \
                Mp4Writer(args.output, film.fps, film.width, film.height,
                          metadata={"title": film.title, "comment": "AI-generated with reelfarm"}) as mp4:
            try:
                for scene_id, index, frame in source.frames():
                    _drain(source, stats, live)
                    stats.on_frame()
                    mp4.write(frame)
                    if args.frames_dir:
                        write_png(args.frames_dir, scene_id, index, frame)
                    live.on_frame(stats)
            except Exception as exc:  # noqa: BLE001 - the stream ends early when the film fails
                console.print(f"[red]frame stream ended:[/red] {exc}")
            state, reason = source.result()
            _drain(source, stats, live)
    finally:
        source.close()
    stats.finished = time.monotonic()
    console.print(stats.table())
    console.print(stats.footer())
    if state != "SUCCEEDED":
        console.print(f"[red]film {state}[/red]: {reason}")
        return 1
    console.print(f"wrote {Path(args.output)} ({film.num_frames} frames at {film.fps} fps)")
    return 0


def _drain(source, stats, live) -> None:
    batch = source.events()
    stats.on_events(batch)
    live.on_events(batch)
