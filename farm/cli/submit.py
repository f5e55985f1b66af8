"""`reelfarm submit STORYBOARD --server HOST:PORT`: send a film to a server and follow it.

Live bars (denoise phases from WatchFilm, frames from StreamFrames) while PNGs land in
--frames-dir as they stream; the server's mp4 is downloaded to -o once the film has
succeeded. `--detach` prints the film's name and returns at once.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from farm.cli.common import add_film_flags, film_flags, load_board, print_spec_error
from farm.cli.remote import add_server_args, connect, print_api_error


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a storyboard to a reelfarm server and follow it")
    p.add_argument("storyboard", help="storyboard (.yaml, .json) or timeline (.otio, .otioz, "
                                      ".otiod, .edl); the media files it names are uploaded "
                                      "first (only those the server does not have)")
    add_server_args(p)
    p.add_argument("-o", "--output", help="download the film's mp4 here once it has succeeded")
    p.add_argument("--frames-dir", help="write frames as they stream: DIR/<scene>/<scene>.NNNN.png")
    p.add_argument("--priority", type=int, help="0 to 100, higher first (default 50)")
    add_film_flags(p)
    p.add_argument("--detach", action="store_true",
                   help="print the film's name (films/...) and return at once")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from farm.client import ApiError
    from farm.spec.errors import SpecError

    try:
        board, _, _ = load_board(args.storyboard, **film_flags(args))  # before any waiting
    except SpecError as exc:
        print_spec_error(exc, args.storyboard)
        return 2
    try:
        with connect(args) as client:
            handle = client.submit(board, priority=args.priority,
                                   base_dir=Path(args.storyboard).parent)
            if args.detach:
                print(handle.name)
                return 0
            return follow(handle, args)
    except SpecError as exc:  # the server's own checks of media it reads
        print_spec_error(exc, args.storyboard)
        return 2
    except ApiError as exc:
        return print_api_error(exc)


def follow(handle, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from farm.api.convert import state_word

    console = Console(stderr=True)
    console.print(f"submitted [bold]{handle.name}[/bold]")
    film = handle.film
    bars = Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)
    errors: list[Exception] = []
    with bars:
        phases = bars.add_task("denoise", total=film.phases_total)
        frames = bars.add_task("frames", total=film.frames_total)
        watcher = threading.Thread(target=_watch, args=(handle, bars, phases, frames,
                                                        not args.frames_dir, errors), daemon=True)
        watcher.start()
        if args.frames_dir:
            _stream_frames(handle, Path(args.frames_dir), bars, frames, errors)
        watcher.join()
    final = handle.get()
    word = state_word(final.state)
    ttff = final.time_to_first_frame.ToTimedelta().total_seconds() if final.HasField(
        "time_to_first_frame") else None
    note = f", first frame after {ttff:.2f} s" if ttff is not None else ""
    console.print(f"{handle.name} {word}: {final.frames_done}/{final.frames_total} frames{note}")
    if word != "SUCCEEDED":
        console.print(f"[red]{final.state_reason}[/red]")
        return 1
    if errors:
        console.print(f"[red]error:[/red] {errors[0]}")
        return 1
    if args.output:
        handle.download(args.output)
        console.print(f"wrote {args.output}")
    return 0


def _watch(handle, bars, phases, frames, count_frames: bool, errors: list) -> None:
    from farm.client import ApiError

    try:
        for event in handle.watch():
            bars.update(phases, completed=event.phases_done)
            if count_frames:
                bars.update(frames, completed=event.frames_done)
    except ApiError as exc:
        errors.append(exc)


def _stream_frames(handle, root: Path, bars, task, errors: list) -> None:
    from farm.client import ApiError, FailedPreconditionError
    from farm.media.writers import png_path

    try:
        for frame in handle.frames(encoding="png"):
            path = png_path(root, frame.scene_id, frame.index)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(frame.data)  # the server's archive PNG, byte for byte
            bars.update(task, completed=frame.film_index + 1)
    except FailedPreconditionError:
        pass  # the film ended without every frame; the final state says why
    except ApiError as exc:
        errors.append(exc)
        print(f"error: {exc}", file=sys.stderr)
