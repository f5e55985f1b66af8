"""film.mp4 is encoded while a film's frames arrive (no re-read of the PNGs after the last
one); it must equal the movie the archive assembles from the PNGs (a resumed or
re-rendered film's path), packet for packet."""

from __future__ import annotations

import av
import numpy as np

from farm.director.archive import FrameArchive

SCENES = [("a", 5), ("b", 4)]


def frames() -> list[tuple[str, int, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [(sid, i, rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
            for sid, n in SCENES for i in range(n)]


def packets(path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


def test_the_live_movie_equals_the_one_assembled_from_the_pngs(tmp_path):
    archive = FrameArchive(tmp_path, SCENES, fps=16, width=48, height=32)
    archive.start()
    for sid, i, frame in reversed(frames()):  # any arrival order: the stream orders them
        archive.stream.put(sid, i, frame)
    archive.join(30)
    assert archive.finished and archive.error is None
    live = packets(archive.mp4_path)
    archive._assemble_mp4()  # what a restarted director builds from the same PNGs
    assert len(live) == 9 and packets(archive.mp4_path) == live


def test_a_stream_that_ends_short_leaves_no_movie(tmp_path):
    archive = FrameArchive(tmp_path, SCENES, fps=16, width=48, height=32)
    archive.start()
    for sid, i, frame in frames()[:6]:
        archive.stream.put(sid, i, frame)
    archive.stream.close("worker lost")
    archive.join(30)
    assert archive.error and not archive.mp4_path.exists()
