"""`reelfarm films ...`: the films of your tenant on a server.

    list | get | cancel | fetch               what there is, and the finished mp4 / frames
    pause | resume | priority | retry          controls (resume and retry take --wait)
    rerender NAME --scene S --frames A-B       render frames A..B of a scene again
    rerender NAME --final                      a draft's final render (a new film)
    executions NAME                            the render log, a table

Frame ranges on this command line are 1-based and inclusive, like the PNG file names
(`<scene>.0033.png` is frame 33); the API counts from 0, so `--frames 33-64` is sent as
first_frame=32, last_frame=63.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC

from farm.cli.remote import add_server_args, connect, print_api_error


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("films", help="list, inspect, control and fetch films on a server")
    fsub = parser.add_subparsers(dest="films_command", required=True, metavar="ACTION")
    list_ = fsub.add_parser("list", help="your films, oldest first")
    list_.add_argument("--state", help="only films in this state, e.g. RUNNING")
    get = _named(fsub, "get", "print a film's state (e.g. SUCCEEDED)")
    get.add_argument("--full", action="store_true", help="print the whole film resource")
    cancel = _named(fsub, "cancel", "cancel a queued or running film")
    fetch = _named(fsub, "fetch", "download a finished film's mp4 (and frames)")
    fetch.add_argument("-o", "--output", required=True, help="mp4 file to write")
    fetch.add_argument("--frames-dir", help="also write every frame: DIR/<scene>/<scene>.NNNN.png")
    fetch.add_argument("--delivery", action="store_true",
                       help="the film's delivery conform (delivery.mp4 and its frames) "
                            "instead of the render")
    pause = _named(fsub, "pause", "pause a queued or running film (running phases finish)")
    resume = _named(fsub, "resume", "resume a paused film")
    priority = _named(fsub, "priority", "set a film's priority (0 to 100, higher first)")
    priority.add_argument("priority", type=int, help="0 to 100")
    retry = _named(fsub, "retry", "run a FAILED film's failed work again")
    rerender = _named(fsub, "rerender", "render frames of a scene of a finished film again")
    rerender.add_argument("--scene", help="scene id, e.g. s020")
    rerender.add_argument("--final", action="store_true",
                          help="render a draft film (`draft:`) as its final: a new film with the "
                               "same scenes and seeds, its own steps and guidance, no draft LoRAs")
    rerender.add_argument("--frames", type=frame_range, metavar="FIRST-LAST",
                          help="frames to render again, 1-based and inclusive like the PNG "
                               "names (33-64), or one frame (33)")
    for action in (resume, retry, rerender):
        action.add_argument("--wait", action="store_true",
                            help="wait until the film has finished; exit 0 if it SUCCEEDED")
    log = _named(fsub, "executions", "the film's render log: every phase, decode and failure")
    runs = ((list_, run_list), (get, run_get), (cancel, run_cancel), (fetch, run_fetch),
            (pause, run_pause), (resume, run_resume), (priority, run_priority),
            (retry, run_retry), (rerender, run_rerender), (log, run_executions))
    for action, run in runs:
        add_server_args(action)
        action.set_defaults(run=_guarded(run))


def _named(fsub, name: str, help_: str) -> argparse.ArgumentParser:
    action = fsub.add_parser(name, help=help_)
    action.add_argument("name", help="films/ID or ID")
    return action


def frame_range(text: str) -> tuple[int, int]:
    """`33-64` or `33` (1-based, inclusive) -> (first, last), 0-based as the API takes them."""
    first, sep, last = text.partition("-")
    try:
        a, b = int(first), int(last) if sep else int(first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not FIRST-LAST, e.g. 33-64") from None
    if not 1 <= a <= b:
        raise argparse.ArgumentTypeError(f"{text!r}: frames are numbered from 1 and FIRST <= LAST")
    return a - 1, b - 1


def _guarded(run):
    def wrapper(args: argparse.Namespace) -> int:
        from farm.client import ApiError

        try:
            with connect(args) as client:
                return run(client, args)
        except ApiError as exc:
            return print_api_error(exc)
    return wrapper


def _word(film) -> str:
    from farm.api.convert import state_word

    return state_word(film.state)


def run_list(client, args: argparse.Namespace) -> int:
    rows = [(film.name, _word(film), str(film.priority), f"{film.frames_done}/{film.frames_total}",
             _utc(film.create_time), film.title) for film in client.list(state=args.state)]
    print_table(("name", "state", "priority", "frames", "created (UTC)", "title"), rows)
    return 0


def run_get(client, args: argparse.Namespace) -> int:
    film = client.get(args.name)
    print(film if args.full else _word(film))
    return 0


def run_cancel(client, args: argparse.Namespace) -> int:
    print(_word(client.cancel(args.name)))
    return 0


def run_fetch(client, args: argparse.Namespace) -> int:
    handle = client.film(args.name)
    film = handle.get()
    handle.download(args.output, delivery=args.delivery)
    print(f"wrote {args.output}")
    if args.frames_dir:
        files = [p for scene in film.scenes
                 for p in handle.download(args.frames_dir, scene_id=scene.id,
                                          delivery=args.delivery)]
        frames = sum(p.suffix == ".png" for p in files)
        print(f"wrote {frames} frames under {args.frames_dir}")
    return 0


def run_pause(client, args: argparse.Namespace) -> int:
    print(_word(client.pause(args.name)))
    return 0


def run_priority(client, args: argparse.Namespace) -> int:
    print(client.set_priority(args.name, args.priority).priority)
    return 0


def run_resume(client, args: argparse.Namespace) -> int:
    return _then_wait(client, args, client.resume(args.name))


def run_retry(client, args: argparse.Namespace) -> int:
    return _then_wait(client, args, client.retry(args.name))


def run_rerender(client, args: argparse.Namespace) -> int:
    if args.final == (args.scene is not None or args.frames is not None) or (
            not args.final and (args.scene is None or args.frames is None)):
        print("error: give --scene and --frames, or --final (a draft's final render)",
              file=sys.stderr)
        return 2
    if args.final:  # a new film: its name first, then its state
        film = client.rerender_final(args.name)
        print(film.name, flush=True)
        return _then_wait(client, argparse.Namespace(**{**vars(args), "name": film.name}), film)
    first, last = args.frames
    return _then_wait(client, args, client.rerender(args.name, args.scene, first, last))


def _then_wait(client, args: argparse.Namespace, film) -> int:
    """Print the state after the call; with --wait, the final state (exit 1 unless SUCCEEDED)."""
    print(_word(film), flush=True)
    if not args.wait:
        return 0
    final = client.film(film.name).wait()
    print(_word(final))
    if _word(final) != "SUCCEEDED":
        print(final.state_reason)
        return 1
    return 0


def run_executions(client, args: argparse.Namespace) -> int:
    from farm.api.convert import execution_kind_word

    rows = []
    for number, e in enumerate(client.executions(args.name), start=1):
        ended = _utc(e.end_time)
        rows.append((str(number), execution_kind_word(e.kind), e.unit_id,
                     str(e.phase_index) if e.HasField("phase_index") else "-", e.expert or "-",
                     ",".join(e.worker_ids) or "-", "yes" if e.succeeded else "no",
                     (f"{e.duration.ToTimedelta().total_seconds():.2f}s" if e.HasField("duration")
                      else "-"),
                     ended, e.message))
    print_table(("#", "kind", "unit", "phase", "expert", "workers", "ok", "compute", "ended (UTC)",
                 "message"), rows)
    return 0


def _utc(ts) -> str:
    return ts.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Plain aligned columns (one line per row, never wrapped: easy to grep and awk)."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
