"""`reelfarm serve --local --db URL --artifacts DIR` stopped and started again on the same
job store and artifacts: the film list and the finished films' frames are kept, a paused
film stays paused, and a film that was rendering resumes and completes."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.serve_proc import start_server, stop_server
from farm.api import convert
from farm.api.protos import pb
from farm.client import Client
from farm.media.writers import probe_video
from tests.serving.api.helpers import LIVE, tiny_board, wait_final

pytestmark = [pytest.mark.grpc, pytest.mark.model]


@contextmanager
def serve(root: Path):
    """`reelfarm serve --local` with the job store and artifacts under root; stopped with
    SIGTERM (as an operator would) at the end, which must be a clean exit. Yields a Client."""
    root.mkdir(exist_ok=True)
    starts = len(list(root.glob("serve-*.log")))
    proc, address = start_server(["--artifacts", str(root / "artifacts"),
                                  "--db", f"sqlite:///{root / 'reelfarm.db'}"],
                                 root / f"serve-{starts + 1}.log")
    try:
        with Client(address) as client:
            yield client
    finally:
        assert stop_server(proc) == 0


def word(film) -> str:
    return convert.state_word(film.state)


def test_films_survive_a_restart_and_unfinished_ones_complete(tmp_path):
    with serve(tmp_path) as client:
        done = client.submit(tiny_board(scenes=2))
        finished = wait_final(done)
        assert word(finished) == "SUCCEEDED"
        done_frames = [f.data for f in done.frames()]
        paused = client.submit(tiny_board(scenes=2))
        paused.pause()
        running = client.submit(tiny_board(scenes=3, frames=33, steps=8))
        for event in running.watch():  # stop once it has made some progress, not all
            if event.WhichOneof("event") == "phase_finished":
                break
        assert word(running.get()) == "RUNNING"
        names = [f.name for f in client.list()]

    with serve(tmp_path) as client:
        assert [f.name for f in client.list()] == names
        assert [word(client.get(n)) for n in (done.name, paused.name)] == ["SUCCEEDED", "PAUSED"]
        again = client.film(done.name)
        assert [f.data for f in again.frames()] == done_frames
        # progress reads as before the restart (it used to say 0 of 4 phases done)
        read_back = again.get()
        assert (read_back.phases_done, read_back.phases_total, read_back.frames_done) == (
            finished.phases_done, finished.phases_total, finished.frames_done) == (4, 4, 18)
        again.download(tmp_path / "done.mp4")
        assert probe_video(tmp_path / "done.mp4")["frames"] == 18

        resumed = client.film(running.name)
        assert word(wait_final(resumed)) == "SUCCEEDED"
        assert any("resumed after a director restart" in e.message for e in resumed.watch())
        assert len(list(resumed.frames())) == 99
        resumed.download(tmp_path / "resumed.mp4")
        assert probe_video(tmp_path / "resumed.mp4")["frames"] == 99
        runs = Counter((e.unit_id, e.phase_index) for e in resumed.executions()
                       if e.kind == pb.Execution.KIND_PHASE)
        assert runs == {(f"s{i}/u0", p): 1 for i in range(3) for p in range(2)}  # none twice

        held = client.film(paused.name)
        assert word(held.resume()) in LIVE
        assert word(wait_final(held)) == "SUCCEEDED" and held.get().frames_done == 18
