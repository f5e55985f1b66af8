"""`reelfarm render STORYBOARD -o OUT.mp4`: render a film on the embedded farm.

The engine runs in a background thread; this thread reads the film's frame stream in
film order and writes each frame to the mp4 (and PNGs) as it arrives.
"""

from __future__ import annotations

import argparse
import queue
import threading
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
                   help="one worker holding everything, or one per expert/VAE/text encoder")
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
    from farm.local import LocalFarm
    from farm.media.writers import Mp4Writer, write_png
    from farm.stitch.stream import StreamClosed

    quiet_libraries()
    dtype = getattr(torch, args.dtype or ("float32" if args.device == "cpu" else "bfloat16"))
    console = Console(stderr=True)
    farm = LocalFarm(film.model, device=args.device, dtype=dtype, workers=args.workers)
    film_id, stream = farm.submit(film)
    stats = RenderStats(film)
    events: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    def engine() -> None:
        try:
            farm.run(events.put)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)

    thread = threading.Thread(target=engine, name="reelfarm-engine", daemon=True)
    thread.start()
    with LiveProgress(console, farm.engine.scheduler.progress(film_id).phases_total,
                      film.num_frames) as live, \
            Mp4Writer(args.output, film.fps, film.width, film.height,
                      metadata={"title": film.title, "comment": "AI-generated with reelfarm"}) as mp4:
        try:
            for item in stream:
                _drain(events, stats, live)
                stats.on_frame()
                mp4.write(item.frame)
                if args.frames_dir:
                    write_png(args.frames_dir, item.scene_id, item.index, item.frame)
                live.on_frame(stats)
        except StreamClosed as exc:
            console.print(f"[red]render failed:[/red] {exc}")
        thread.join()
        _drain(events, stats, live)
    if failure:
        console.print(f"[red]engine error:[/red] {failure[0]}")
        return 1
    progress = farm.engine.scheduler.progress(film_id)
    stats.finished = time.monotonic()
    console.print(stats.table())
    console.print(stats.footer())
    if progress.state.value != "SUCCEEDED":
        console.print(f"[red]film {progress.state.value}[/red]: {progress.reason}")
        return 1
    console.print(f"wrote {Path(args.output)} ({film.num_frames} frames at {film.fps} fps)")
    return 0


def _drain(events: queue.Queue, stats, live) -> None:
    while True:
        try:
            batch = events.get_nowait()
        except queue.Empty:
            return
        stats.on_events(batch)
        live.on_events(batch)
