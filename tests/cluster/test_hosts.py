"""Scenarios on a real multi-host cluster (tests/cluster/conftest.py): a film whose handoffs
cross hosts, and a host lost mid-film."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from farm.api.protos import pb
from farm.client import Client
from tests.serving.api.helpers import wait_final
from tests.serving.test_ray_runtime import inline_frames

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.cluster]

# Three scenes; the last one longer than a window, rendered as parallel windows.
FILM = {"title": "hosts", "fps": 16, "width": 32, "height": 32, "model": "tiny", "steps": 4,
        "scenes": [{"id": "a", "prompt": "a boat at dawn", "frames": 9, "seed": 2},
                   {"id": "b", "prompt": "a fox in snow", "frames": 9, "seed": 3},
                   {"id": "c", "prompt": "waves", "frames": 33, "seed": 4,
                    "continuity": "windows", "window": 5, "overlap": 2}]}


def render(cluster, board: dict, during=None, timeout: float = 600.0):
    """(final film, frames, phases of the render log) of `board` on the cluster; `during`
    runs once the film's first phase is done."""
    with Client(cluster.address) as client:
        film = client.submit(board)
        if during is not None:
            deadline = time.monotonic() + timeout
            while film.get().phases_done == 0:
                assert time.monotonic() < deadline, "no phase finished"
                time.sleep(0.2)
            during()
        done = wait_final(film, timeout=timeout)
        frames = np.stack([f.to_array() for f in film.frames()])
        log = list(film.executions())
    return done, frames, log


def note_recomputed(scenario: str, log) -> None:
    """Print (pytest -s / -rP) how many tasks the render log says failed and ran again:
    what a scenario cost in recomputation (the closing notes quote it)."""
    failed = [e.unit_id for e in log if e.kind == pb.Execution.KIND_FAILURE]
    print(f"{scenario}: {len(failed)} failed tasks ran again: {failed}")


def test_handoffs_across_hosts_equal_the_inline_render(cluster):
    done, frames, log = render(cluster, FILM)
    assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
    assert np.array_equal(frames, inline_frames(FILM))
    phases = [e for e in log if e.kind == pb.Execution.KIND_PHASE]
    hosts = {(e.expert, cluster.host_of(w)) for e in phases for w in e.worker_ids}
    assert hosts == {("high", "high"), ("low", "low")}, hosts  # every phase names its host


def test_a_host_lost_mid_film_changes_nothing_in_the_frames(cluster):
    """Every process of the low-noise host is SIGKILLed after the film's first phase; a
    spare host offering the same resource has joined, Serve starts the pool's replica
    there, and the film completes with the inline render's frames."""
    spare = cluster.add_node("spare", {"rf_low": 10})
    killed = []
    done, frames, log = render(cluster, FILM,
                               during=lambda: killed.append(cluster.net.kill_host(
                                   cluster.hosts["low"])))
    assert killed and killed[0] > 0
    assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
    assert np.array_equal(frames, inline_frames(FILM))
    phases = [e for e in log if e.kind == pb.Execution.KIND_PHASE]
    low_hosts = {cluster.host_of(w) for e in phases if e.expert == "low" for w in e.worker_ids}
    assert "spare" in low_hosts, low_hosts  # the lost host's work ran on the spare
    assert spare.address in {w.rsplit("@", 1)[-1] for e in phases for w in e.worker_ids}
    failures = [e for e in log if e.kind == pb.Execution.KIND_FAILURE]
    assert failures or low_hosts == {"spare"}, log  # lost work shows in the render log
    note_recomputed("host lost", log)


def test_a_partitioned_host_rejoins_and_the_film_completes(cluster):
    """The high-noise host's link goes down for longer than the director's liveness
    timeout (5 s), then comes back: the director declares its worker lost, holds the high
    phases (no other host offers them), and gives them to the worker once it has
    re-registered; every frame arrives once, equal to the inline render."""
    host = cluster.hosts["high"]
    healed = []

    def partition() -> None:
        cluster.net.link(host, up=False)
        time.sleep(8.0)
        cluster.net.link(host, up=True)
        healed.append(time.time())

    done, frames, log = render(cluster, FILM, during=partition)
    note_recomputed("partition", log)
    assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
    assert len(frames) == sum(s["frames"] for s in FILM["scenes"])  # none lost or repeated
    assert np.array_equal(frames, inline_frames(FILM))
    after = [e for e in log if e.kind == pb.Execution.KIND_PHASE and e.expert == "high"
             and e.end_time.ToNanoseconds() / 1e9 > healed[0]]
    assert after, "the returning host got no work"
    assert {cluster.host_of(w) for e in after for w in e.worker_ids} == {"high"}
    # it came back as a new registration of the same replica (<pool>-<replica>-<n>@host)
    assert {w.split("@")[0].rsplit("-", 1)[1] for e in after for w in e.worker_ids} != {"1"}


def _director_pids(cluster) -> list[int]:
    """The DirectorServer replica's process on the head (Ray names it in its title)."""
    out = []
    for pid in cluster.hosts["head"].pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"DirectorServer" in title and b"ServeReplica" in title:
            out.append(pid)
    return out


def test_the_director_restarts_and_every_film_resumes(cluster):
    """A finished film and a running one; the director's process is SIGKILLed mid-film.
    Serve starts a new replica on the head, which reads the films back from PostgreSQL:
    the finished film reads as before (progress and render log), the running one resumes
    from its finished phases, and a client streaming its frames through the restart gets
    every frame exactly once, equal to the inline render."""
    with Client(cluster.address) as client:
        first = client.submit(FILM)
        finished = wait_final(first, timeout=300)
        before = (finished.phases_done, finished.phases_total, finished.frames_done,
                  [(e.kind, e.unit_id, e.phase_index) for e in first.executions()])
        film = client.submit(FILM | {"title": "through a restart"})
        streamed = []
        reader = threading.Thread(target=lambda: streamed.extend(film.frames()), daemon=True)
        reader.start()
        deadline = time.monotonic() + 300
        while film.get().phases_done == 0:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        pids = _director_pids(cluster)
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
        done = wait_final(film, timeout=600)
        reader.join(timeout=300)
        again = first.get()
        after = (again.phases_done, again.phases_total, again.frames_done,
                 [(e.kind, e.unit_id, e.phase_index) for e in first.executions()])
    assert _director_pids(cluster) and _director_pids(cluster) != pids  # a new replica
    assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
    assert after == before
    assert [f.film_index for f in streamed] == list(range(len(streamed)))
    assert np.array_equal(np.stack([f.to_array() for f in streamed]), inline_frames(FILM))
