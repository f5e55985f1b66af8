"""Server-sent events: framing, and a blocking iterator (a film's events or frames, which
wait on the director) driven from worker threads without holding the event loop.

A stream ends with `event: end` when its iterator does, or `event: error` carrying the
API's error JSON (a film that stops delivering frames, say). When the client goes away
the ASGI server cancels the response; `alive` is then cleared, and the iterator, which
checks it at least every poll interval, returns and frees its thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread

from farm.web.views import error_json

PING = b": ping\n\n"
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_END = object()


def message(data: Any, event: str | None = None, id: int | str | None = None) -> bytes:
    lines = []
    if event:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return ("\n".join(lines) + "\n\n").encode()


async def from_thread(items: Iterator[Any], alive: threading.Event,
                      encode: Callable[[Any], bytes], limiter: anyio.CapacityLimiter
                      ) -> AsyncIterator[bytes]:
    """SSE messages of `items` (None: a heartbeat comment), each next() in a thread."""
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, items, _END, abandon_on_cancel=True,
                                                  limiter=limiter)
            if item is _END:
                yield message({}, "end")
                return
            yield PING if item is None else encode(item)
    except Exception as exc:  # noqa: BLE001 - an error after the response started
        yield message(error_json(exc)[1], "error")
    finally:
        alive.clear()


async def polled(snapshot: Callable[[], Any], event: str, every: float,
                 limiter: anyio.CapacityLimiter) -> AsyncIterator[bytes]:
    """`snapshot()` (run in a thread) every `every` seconds, sent when it changed; a
    heartbeat comment at least every 15 s."""
    last, quiet = None, 0.0
    while True:
        try:
            data = await anyio.to_thread.run_sync(snapshot, limiter=limiter)
        except Exception as exc:  # noqa: BLE001 - e.g. the token was revoked by a restart
            yield message(error_json(exc)[1], "error")
            return
        encoded = json.dumps(data, separators=(",", ":"), sort_keys=True)
        if encoded != last:
            last, quiet = encoded, 0.0
            yield f"event: {event}\ndata: {encoded}\n\n".encode()
        elif quiet >= 15.0:
            quiet = 0.0
            yield PING
        await anyio.sleep(every)
        quiet += every
