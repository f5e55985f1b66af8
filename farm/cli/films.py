"""`reelfarm films list|get|cancel|fetch`: the films of your tenant on a server."""

from __future__ import annotations

import argparse
from datetime import UTC

from farm.cli.remote import add_server_args, connect, print_api_error


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("films", help="list, inspect, cancel and fetch films on a server")
    fsub = p.add_subparsers(dest="films_command", required=True, metavar="ACTION")
    ls = fsub.add_parser("list", help="your films, oldest first")
    ls.add_argument("--state", help="only films in this state, e.g. RUNNING")
    get = fsub.add_parser("get", help="print a film's state (e.g. SUCCEEDED)")
    get.add_argument("name", help="films/ID or ID")
    get.add_argument("--full", action="store_true", help="print the whole film resource")
    cancel = fsub.add_parser("cancel", help="cancel a queued or running film")
    cancel.add_argument("name", help="films/ID or ID")
    fetch = fsub.add_parser("fetch", help="download a finished film's mp4 (and frames)")
    fetch.add_argument("name", help="films/ID or ID")
    fetch.add_argument("-o", "--output", required=True, help="mp4 file to write")
    fetch.add_argument("--frames-dir", help="also write every frame: DIR/<scene>/<scene>.NNNN.png")
    for action, run in ((ls, run_list), (get, run_get), (cancel, run_cancel), (fetch, run_fetch)):
        add_server_args(action)
        action.set_defaults(run=_guarded(run))


def _guarded(run):
    def wrapper(args: argparse.Namespace) -> int:
        from farm.client import ApiError

        try:
            with connect(args) as client:
                return run(client, args)
        except ApiError as exc:
            return print_api_error(exc)
    return wrapper


def run_list(client, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from farm.api.convert import state_word

    table = Table("name", "state", "title", "frames", "created (UTC)")
    for film in client.list(state=args.state):
        created = film.create_time.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(film.name, state_word(film.state), film.title,
                      f"{film.frames_done}/{film.frames_total}", created)
    Console().print(table)
    return 0


def run_get(client, args: argparse.Namespace) -> int:
    from farm.api.convert import state_word

    film = client.get(args.name)
    print(film if args.full else state_word(film.state))
    return 0


def run_cancel(client, args: argparse.Namespace) -> int:
    from farm.api.convert import state_word

    print(state_word(client.cancel(args.name).state))
    return 0


def run_fetch(client, args: argparse.Namespace) -> int:
    handle = client.film(args.name)
    film = handle.get()
    handle.download(args.output)
    print(f"wrote {args.output}")
    if args.frames_dir:
        for scene in film.scenes:
            handle.download(args.frames_dir, scene_id=scene.id)
        print(f"wrote {film.frames_total} frames under {args.frames_dir}")
    return 0
