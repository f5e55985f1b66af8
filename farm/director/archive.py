"""The frame archive of a film: every frame on disk as it arrives, plus the mp4.

    executor ──frames (any order)──> FrameStream ──film order──> archive thread
                                                                 ├─ frames/<scene>/<scene>.NNNN.png
                                                                 └─ film.mp4 (h264, grows)
    readers (StreamFrames, resumable) <── PNGs already written, then follow live

Readers never hold frames in memory beyond the one they are sending, and a client that
reconnects resumes from any frame, because the archive (not the stream) is the source.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from farm.media.writers import Mp4Writer, png_path, write_png
from farm.stitch.stream import FrameStream, StreamClosed


@dataclass(frozen=True, slots=True)
class ArchivedFrame:
    scene_id: str
    # Frame number within the scene and within the film (0-based).
    index: int
    film_index: int
    path: Path


class FrameArchive:
    def __init__(self, root: Path, scenes: list[tuple[str, int]], fps: int, width: int,
                 height: int, metadata: dict[str, str] | None = None):
        self.root = root
        self.scenes = scenes
        self.total = sum(n for _, n in scenes)
        self.fps, self.width, self.height = fps, width, height
        self.metadata = metadata or {}
        self.stream = FrameStream(scenes)
        self._cv = threading.Condition()
        self.written = 0
        self.error: str | None = None
        self.finished = False
        self._thread: threading.Thread | None = None

    @property
    def mp4_path(self) -> Path:
        return self.root / "film.mp4"

    def start(self, on_first_frame=None, on_done=None) -> None:
        self._thread = threading.Thread(target=self._write, args=(on_first_frame, on_done),
                                        name=f"archive-{self.root.name}", daemon=True)
        self._thread.start()

    def _write(self, on_first_frame, on_done) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with Mp4Writer(self.mp4_path, self.fps, self.width, self.height,
                           metadata=self.metadata) as mp4:
                for item in self.stream:
                    write_png(self.root / "frames", item.scene_id, item.index, item.frame)
                    mp4.write(item.frame)
                    with self._cv:
                        self.written += 1
                        self._cv.notify_all()
                    if self.written == 1 and on_first_frame is not None:
                        on_first_frame()
        except (StreamClosed, OSError) as exc:
            self.error = str(exc)
        finally:
            with self._cv:
                self.finished = True
                self._cv.notify_all()
            if on_done is not None:
                on_done(self.error)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def position(self, scene_id: str, index: int) -> int:
        """Film frame index of (scene, frame); ValueError if out of range."""
        offset = 0
        for sid, n in self.scenes:
            if sid == scene_id:
                if not 0 <= index < n:
                    raise ValueError(f"scene {scene_id} has frames 0..{n - 1}, not {index}")
                return offset + index
            offset += n
        raise ValueError(f"no scene {scene_id!r} in this film")

    def _locate(self, pos: int) -> tuple[str, int]:
        for sid, n in self.scenes:
            if pos < n:
                return sid, pos
            pos -= n
        raise IndexError(pos)

    def read(self, start: int = 0, timeout: float | None = None) -> Iterator[ArchivedFrame]:
        """Frames from film index `start` on, following the archive until the film ends."""
        pos = start
        while pos < self.total:
            with self._cv:
                if not self._cv.wait_for(lambda p=pos: self.written > p or self.finished, timeout):
                    raise TimeoutError(f"no frame {pos} within {timeout} s")
                available = self.written
            if available <= pos:
                raise StreamClosed(self.error or f"film ended after {available} of {self.total} frames")
            while pos < available:
                sid, idx = self._locate(pos)
                yield ArchivedFrame(sid, idx, pos, png_path(self.root / "frames", sid, idx))
                pos += 1
