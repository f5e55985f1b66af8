"""The frame archive of a film: every frame on disk as it arrives, the mp4 at the end.

    executor ──frames (any order)──> FrameStream ──film order──> archive thread
                                                                 └─ frames/<scene>/<scene>.NNNN.png
    readers (StreamFrames, resumable) <── PNGs already written, then follow live
    frames in order ──> film.mp4 (h264), encoded as they arrive; or, for a resumed or
                       re-rendered archive, assembled from the PNGs once all are on disk
                       └─> with `delivery:`, delivery.mp4 + delivery/<scene>/<scene>.NNNN.png,
                           conformed from the same PNGs (farm.media.conform), scene by scene

The PNGs are the film's durable record: a restarted director resumes after the last
contiguous frame on disk, a re-render rewrites a range, and the mp4 is (re)built from
the PNGs whenever every frame exists. Encoded live, it holds the very frames the PNGs
were written from, and is kept only if every frame went through it: so it can never hold
a frame the archive lacks.
Readers never hold frames in memory beyond the one they are sending.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from farm.media.writers import Mp4Writer, png_path, write_png
from farm.stitch.stream import FrameStream, StreamClosed

if TYPE_CHECKING:
    from farm.director.delivery import Delivery
    from farm.spec.delivery import Delivery as Conform


@dataclass(frozen=True, slots=True)
class ArchivedFrame:
    scene_id: str
    # Frame number within the scene and within the film (0-based).
    index: int
    film_index: int
    path: Path


class FrameArchive:
    def __init__(self, root: Path, scenes: list[tuple[str, int]], fps: int, width: int,
                 height: int, metadata: dict[str, str] | None = None,
                 delivery: Delivery | None = None, conform: Conform | None = None):
        """`delivery` (farm.director.delivery): labels, signs and completes what the
        archive delivers; None writes plain PNGs and a plain mp4. `conform`: the film's
        `delivery:` (farm.spec.delivery), made beside the mp4."""
        self.root = root
        self.delivery = delivery
        self.conform = conform
        self.scenes = scenes
        self.total = sum(n for _, n in scenes)
        self.fps, self.width, self.height = fps, width, height
        self.metadata = metadata or {}
        self._cv = threading.Condition()
        self.written = self._frames_on_disk()
        self.stream = FrameStream(scenes, start=self.written)
        self.error: str | None = None
        self.finished = False
        self.on_frame: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def mp4_path(self) -> Path:
        return self.root / "film.mp4"

    @property
    def delivery_mp4_path(self) -> Path:
        return self.root / "delivery.mp4"

    def _frames_on_disk(self) -> int:
        """Contiguous frames already archived (a restarted director continues after them)."""
        n = 0
        while n < self.total and self._path(n).is_file():
            n += 1
        return n

    def _path(self, pos: int) -> Path:
        sid, idx = self._locate(pos)
        return png_path(self.root / "frames", sid, idx)

    def start(self, on_first_frame: Callable[[], None] | None = None,
              on_done: Callable[[str | None], None] | None = None,
              on_frame: Callable[[], None] | None = None) -> None:
        self.on_frame = on_frame
        # From frame 0 the film's frames arrive in order: film.mp4 is encoded as they do.
        live = self.written == 0
        self._thread = threading.Thread(target=self._run, args=(on_first_frame, on_done, live),
                                        name=f"archive-{self.root.name}", daemon=True)
        self._thread.start()

    def rewrite(self, start: int, stop: int, on_done: Callable[[str | None], None],
                skip: tuple[tuple[int, int], ...] = ()) -> None:
        """Accept frames [start, stop) again (a re-render), but those in `skip` (kept on
        disk), then rebuild the mp4."""
        self.join()
        with self._cv:
            self.finished, self.error = False, None
            self.written = min(self.written, start)
        self.stream = FrameStream(self.scenes, start=start, stop=stop, skip=skip)
        self._thread = threading.Thread(target=self._run, args=(None, on_done), daemon=True)
        self._thread.start()

    def _run(self, on_first_frame, on_done, live: bool = False) -> None:
        """Archive the stream's frames, then make the mp4. `live`: encode film.mp4 while
        the frames arrive (the stream starts at frame 0), so the movie is done moments
        after the last frame; a resumed or re-rendered archive builds it from the PNGs."""
        movie = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            movie = self._movie() if live else None
            for item in self.stream:
                self._write(item.scene_id, item.index, item.frame)
                if movie is not None:
                    movie.write(item.frame)
                if self.on_frame is not None:
                    self.on_frame()
                with self._cv:
                    self.written = max(self.written, item.film_index + 1)
                    self._cv.notify_all()
                if on_first_frame is not None and item.film_index == 0:
                    on_first_frame()
            with self._cv:
                self.written = self._frames_on_disk()
            if self.written < self.total:
                raise OSError(f"{self.total - self.written} frame(s) missing from the archive")
            if movie is not None and movie.frames == self.total:
                movie, whole = None, movie
                whole.close()
                self._finish_mp4()
            else:
                self._assemble_mp4()
            if self.conform is not None:
                self._assemble_delivery(self.conform)
        except (StreamClosed, OSError, ValueError, RuntimeError) as exc:
            self.error = str(exc)
        finally:
            if movie is not None:  # unfinished: the part is rebuilt from the PNGs later;
                with suppress(Exception):  # the film's error is set, readers must still end
                    movie.close()
            with self._cv:
                self.finished = True
                self._cv.notify_all()
            if on_done is not None:
                on_done(self.error)

    def _write(self, scene_id: str, index: int, frame: np.ndarray) -> None:
        if self.delivery is not None:
            self.delivery.write_frame(self.root / "frames", scene_id, index, frame)
        else:
            write_png(self.root / "frames", scene_id, index, frame)

    @property
    def _mp4_part(self) -> Path:
        return self.root / ".film.part.mp4"  # an .mp4 suffix: the credentials go by type

    def _movie(self) -> Mp4Writer:
        return Mp4Writer(self._mp4_part, self.fps, self.width, self.height,
                         metadata=self.metadata)

    def _assemble_mp4(self) -> None:
        """film.mp4 from the archived PNGs (written next to it, then moved into place)."""
        with self._movie() as mp4:
            for pos in range(self.total):
                mp4.write(self._read(pos, "film.mp4"))
        self._finish_mp4()

    def _finish_mp4(self) -> None:
        if self.delivery is not None:
            self.delivery.finish_movie(self._mp4_part, self.root / "frames", self.mp4_path.name)
        self._mp4_part.replace(self.mp4_path)

    def _read(self, pos: int, making: str) -> np.ndarray:
        path = self._path(pos)
        try:
            im = Image.open(path)
        except FileNotFoundError:  # removed after the count above: the same fault
            raise OSError(f"{path.name} went missing from the archive while {making} "
                          "was assembled") from None
        with im:
            return np.asarray(im.convert("RGB"))

    def _assemble_delivery(self, conform: Conform) -> None:
        """delivery.mp4 and its PNG sequence, conformed from the archived PNGs at the
        stage film.mp4 is made (written beside, then moved into place)."""
        from farm.media.conform import DeliveryWriter

        folder = self.root / "delivery"
        shutil.rmtree(folder, ignore_errors=True)  # a re-render rebuilds it whole
        part = self.root / ".delivery.part.mp4"
        writer = DeliveryWriter(conform, part, folder, title=self.metadata.get("title", ""))
        try:
            for pos in range(self.total):
                sid, idx = self._locate(pos)
                writer.write(sid, idx, self._read(pos, "delivery.mp4"), dict(self.scenes)[sid])
        finally:
            writer.close()
        if self.delivery is not None:
            self.delivery.finish_conformed(part, writer, self.delivery_mp4_path.name)
        part.replace(self.delivery_mp4_path)

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
                raise StreamClosed(self.error
                                   or f"film ended after {available} of {self.total} frames")
            while pos < available:
                sid, idx = self._locate(pos)
                yield ArchivedFrame(sid, idx, pos, png_path(self.root / "frames", sid, idx))
                pos += 1
