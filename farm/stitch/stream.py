"""The film-level frame stream: frames arrive in any order, leave in film order, once.

    decoders ──put(scene, i, frame)──> FrameStream ──> for item in stream: ...
      (any scene, any order,            buffer + dedup    (scene 0 frame 0, 1, ...,
       retries may repeat frames)                          scene 1 frame 0, ...)

A frame is released as soon as every earlier frame of the film has been released. A
frame delivered twice (a retried decode) is dropped the second time; the farm is
deterministic, so both copies are equal. Iterate synchronously or with `async for`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StreamFrame:
    scene_id: str
    # Frame number within the scene (0-based) and within the film.
    index: int
    film_index: int
    frame: Any


class StreamClosed(RuntimeError):
    """The film ended without delivering every frame (failed or cancelled)."""


class FrameStream:
    def __init__(self, scenes: list[tuple[str, int]], start: tuple[str, int] | int | None = None,
                 stop: int | None = None, skip: tuple[tuple[int, int], ...] = ()):
        """`scenes`: (scene id, frame count) in film order; `start`: resume from that frame
        ((scene, index) or a film frame index); `stop`: end before this film frame index;
        `skip`: film frame ranges [a, b) inside that are not delivered again (a re-render
        of a scene and a later scene started from it, not the scenes between)."""
        self._skip = skip
        self._scenes = scenes
        self._offset: dict[str, int] = {}
        total = 0
        for sid, n in scenes:
            self._offset[sid] = total
            total += n
        self.total = total if stop is None else stop
        if isinstance(start, tuple):
            self._next = self._offset[start[0]] + start[1]
        else:
            self._next = start or 0
        self._buffer: dict[int, StreamFrame] = {}
        self._cv = threading.Condition()
        self._error: str | None = None
        self._closed = False

    @property
    def delivered(self) -> int:
        """Frames released so far (including frames skipped by a resume)."""
        return self._next

    def put(self, scene_id: str, index: int, frame: Any) -> bool:
        """Offer a frame; False if it was already released or is buffered (a duplicate)."""
        pos = self._offset[scene_id] + index
        with self._cv:
            if (pos < self._next or pos >= self.total or pos in self._buffer
                    or any(a <= pos < b for a, b in self._skip)):
                return False
            self._buffer[pos] = StreamFrame(scene_id, index, pos, frame)
            self._cv.notify_all()
            return True

    def close(self, error: str | None = None) -> None:
        """No more frames will come; `error` says why if the film did not complete."""
        with self._cv:
            self._closed, self._error = True, error
            self._cv.notify_all()

    def get(self, timeout: float | None = None) -> StreamFrame | None:
        """The next frame in film order; None at the end. Raises StreamClosed on failure."""
        with self._cv:
            for a, b in self._skip:
                if a <= self._next < b:
                    self._next = b
            ok = self._cv.wait_for(lambda: self._next in self._buffer or self._next >= self.total
                                   or self._closed, timeout=timeout)
            if not ok:
                raise TimeoutError(f"no frame {self._next} within {timeout} s")
            if self._next in self._buffer:
                item = self._buffer.pop(self._next)
                self._next += 1
                return item
            if self._next >= self.total:
                return None
            raise StreamClosed(self._error
                               or f"stream closed after {self._next} of {self.total} frames")

    def __iter__(self) -> Iterator[StreamFrame]:
        while (item := self.get()) is not None:
            yield item

    async def __aiter__(self) -> AsyncIterator[StreamFrame]:
        while (item := await asyncio.to_thread(self.get)) is not None:
            yield item


class FrameRouter:
    """A FrameSink that forwards each film's frames to its stream."""

    def __init__(self) -> None:
        self.streams: dict[str, FrameStream] = {}

    def frame(self, film_id: str, scene_id: str, index: int, frame: Any) -> None:
        stream = self.streams.get(film_id)
        if stream is not None:
            stream.put(scene_id, index, frame)
