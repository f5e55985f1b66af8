"""The artifact store fails under a running film: it is full (a real 1 MiB tmpfs), or its
folder is removed. The film must fail with a clear, stored reason (or recover); nothing
may report success with missing or wrong frames."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from farm.local import local_director
from farm.sched.output import FilmState
from tests.helpers import make_film, scene

pytestmark = pytest.mark.model
FILM = make_film([scene(f"s{i}", 33, seed=i) for i in range(3)], steps=4, width=64, height=64)


@pytest.fixture
def small_fs(tmp_path):
    """A real filesystem of 1 MiB (tmpfs), so writes fail with ENOSPC."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def run(artifacts, db: str, sabotage=None):
    d = local_director("tiny", artifacts, db=db).start()
    try:
        info = d.create_film(FILM, tenant="a")
        for event in d.watch(info.film_id, "a", timeout=120):
            if sabotage is not None and event.kind == "frames":
                sabotage(info.film_id)
                sabotage = None
        final = d.get_film(info.film_id, "a")
        row = d.store.film(info.film_id)
        mp4 = artifacts / "films" / info.film_id / "film.mp4"
        return final, row, mp4
    finally:
        d.stop()


def test_full_artifact_store_fails_the_film_with_a_stored_reason(small_fs, tmp_path):
    final, row, mp4 = run(small_fs, f"sqlite:///{tmp_path}/jobs.db")
    assert final.state == FilmState.FAILED
    assert "No space left on device" in final.reason
    assert (row.state, row.reason) == ("FAILED", final.reason)  # stored, survives restarts
    assert not mp4.exists()


def test_removed_artifact_folder_never_yields_a_successful_film(tmp_path):
    artifacts = tmp_path / "artifacts"
    def remove(film_id: str) -> None:  # the archive keeps writing meanwhile: repeat
        for _ in range(20):
            shutil.rmtree(artifacts / "films" / film_id, ignore_errors=True)

    final, row, mp4 = run(artifacts, f"sqlite:///{tmp_path}/jobs.db", sabotage=remove)
    assert final.state == FilmState.FAILED
    assert "missing from the archive" in final.reason
    assert row.state == "FAILED" and not mp4.exists()


def test_a_frame_removed_after_the_count_fails_the_mp4_with_the_same_reason(tmp_path):
    """The race the test above can hit: every PNG was on disk when the archive counted
    them, one is gone when film.mp4 is assembled. The reason is the same, no mp4 is left."""
    import numpy as np

    from farm.director.archive import FrameArchive
    from farm.media.writers import png_path, write_png

    for i in range(3):
        write_png(tmp_path / "frames", "s0", i, np.full((16, 16, 3), 40 * i, dtype=np.uint8))
    archive = FrameArchive(tmp_path, [("s0", 3)], fps=16, width=16, height=16)
    assert archive.written == 3  # the count saw every frame
    gone = png_path(tmp_path / "frames", "s0", 1)
    gone.unlink()
    with pytest.raises(OSError, match=f"{gone.name} went missing from the archive"):
        archive._assemble_mp4()
    assert not archive.mp4_path.exists()
