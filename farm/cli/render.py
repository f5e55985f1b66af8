"""`reelfarm render STORYBOARD|TIMELINE -o OUT.mp4`: render a film on this machine.

The farm runs in the background (an engine thread, or a local Ray cluster); this thread
reads the film's frames in film order and hands each to the deliverables (mp4 with gaps
in place, PNG/EXR sequences, contact sheet) as it arrives; provenance manifests and an
.otio export follow once the film is done (farm/cli/outputs.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from farm.cli.common import add_film_flags, load_from_args
from farm.cli.outputs import add_output_flags, check_output_flags
from farm.spec.characters import character_log


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a storyboard or timeline to an mp4 on this machine")
    p.add_argument("storyboard", help="storyboard (.yaml, .json) or timeline (.otio, .otioz, "
                                      ".otiod, .edl)")
    p.add_argument("-o", "--output", required=True, help="mp4 file to write")
    add_film_flags(p)
    add_output_flags(p)
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="transformer dtype (default: float32 on cpu, bfloat16 otherwise)")
    p.add_argument("--workers", choices=("single", "split"), default="single",
                   help="inline: one worker holding everything, or one per expert/VAE/text encoder")
    p.add_argument("--executor", choices=("inline", "ray"), default="inline",
                   help="inline: this process (fast start); ray: a local Ray cluster running "
                        "the Serve app, as on a GPU farm")
    p.add_argument("--address", help="with --executor ray: join this Ray cluster (e.g. auto or "
                                      "HOST:6379; default RAY_ADDRESS if set) instead of "
                                      "starting a private one here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (loaded := load_from_args(args)) is None:
        return 2
    if args.address and args.executor != "ray":
        print("error: --address goes with --executor ray", file=sys.stderr)
        return 2
    if problem := check_output_flags(args, loaded.film):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    film = loaded.film
    import torch
    from rich.console import Console

    from farm.cli.outputs import ProvenanceRecorder, finish, open_deliverables
    from farm.cli.progress import RenderStats
    from farm.cli.render_sources import InlineSource, RaySource, cluster_storyboard
    from farm.observe.logs import quiet_libraries

    quiet_libraries()
    console = Console(stderr=True)
    for line in character_log(film.scenes):  # how each scene takes its characters
        console.print(line, markup=False, highlight=False)
    if args.executor == "ray":
        console.print("starting the reelfarm app on Ray "
                      "(a local cluster: about 30 s on 2 cores) ...")
        source = RaySource(film, cluster_storyboard(loaded.board, film), torch.get_num_threads(),
                           address=args.address)
        console.print(f"cluster ready after {source.startup_s:.1f} s")
    else:
        dtype = getattr(torch, args.dtype or ("float32" if args.device == "cpu" else "bfloat16"))
        source = InlineSource(film, args.device, dtype, args.workers, loaded.model)
    stats = RenderStats(film)
    recorder = ProvenanceRecorder(loaded)
    out = open_deliverables(args, loaded)
    state, reason = "FAILED", "interrupted"
    try:
        state, reason = _stream(console, source, stats, out)
    finally:
        source.close()
        written = out.close(complete=state == "SUCCEEDED")
    stats.finished = time.monotonic()
    console.print(stats.table())
    console.print(stats.footer())
    if state != "SUCCEEDED":
        console.print(f"[red]film {state}[/red]: {reason}")
        return 1
    manifests = finish(args, loaded, written, recorder, stats.ttff)
    gaps = f" + {out.gap_frames} gap frames" if out.gap_frames else ""
    console.print(f"wrote {Path(args.output)} ({film.num_frames} frames{gaps} at {film.fps} fps) "
                  f"and {len(manifests)} provenance manifest(s)")
    if (conformed := out.conformed) is not None:
        d = conformed.delivery
        console.print(f"conformed {conformed.mp4} ({sum(n for _, n in conformed.slots)} frames "
                      f"at {d.fps} fps, {d.width}x{d.height}; farm/spec/delivery.py's rule)")
    return 0


def _stream(console, source, stats, out) -> tuple[str, str]:
    """Frames in film order to the deliverables, with live progress; the film's end state
    (a film whose frames did not all reach the deliverables did not succeed)."""
    from farm.cli.progress import LiveProgress

    delivered, problem = 0, ""
    with LiveProgress(console, source.phases_total, stats.film.num_frames) as live:
        try:
            for scene_id, index, frame in source.frames():
                _drain(source, stats, live)
                stats.on_frame()
                out.write(scene_id, index, frame)
                delivered += 1
                live.on_frame(stats)
        except Exception as exc:  # noqa: BLE001 - the stream ends early when the film fails
            problem = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]frame stream ended:[/red] {problem}")
        state, reason = source.result()
        _drain(source, stats, live)
    if state == "SUCCEEDED" and delivered != stats.film.num_frames:
        return "FAILED", f"{delivered} of {stats.film.num_frames} frames delivered ({problem})"
    return state, reason


def _drain(source, stats, live) -> None:
    batch = source.events()
    stats.on_events(batch)
    live.on_events(batch)
