"""Scenario 5 on a real multi-host cluster (tests/cluster/conftest.py): a host joins while
films are queued, the high-noise pool grows onto it (Serve autoscaling on the director's
backlog, serving.autoscale), it does work, and it leaves cleanly once drained."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from farm.api.protos import pb
from farm.client import Client
from tests.cluster.test_hosts import FILM, render
from tests.serving.api.helpers import wait_final
from tests.serving.test_ray_runtime import inline_frames

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.cluster]
RUNNING = (pb.Film.STATE_QUEUED, pb.Film.STATE_RUNNING)


def _replicas(host, deployment: str) -> int:
    """Serve replicas of `deployment` running in the host's namespace (by process title)."""
    count = 0
    for pid in host.pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        count += b"ServeReplica" in title and deployment.encode() in title
    return count


def _phase_hosts(cluster, films) -> list[tuple[str, str]]:
    """(expert, host) of every phase the films' render logs name so far."""
    return [(e.expert, cluster.host_of(w)) for film in films for e in film.executions()
            if e.kind == pb.Execution.KIND_PHASE for w in e.worker_ids]


def test_a_host_joins_mid_queue_takes_work_and_leaves_cleanly(scaling_cluster):
    """Films queue up on one High replica; a host offering the high pool's resource joins
    after the first phase. The pool's backlog makes Serve start a second High replica there,
    which registers and runs high phases while the queue lasts (films keep coming until it
    has). Drained afterwards, its replica hands in everything and leaves: no film records a
    failure, every film's frames equal the inline render, and a film rendered after the
    host has shut down runs on the remaining hosts."""
    cluster = scaling_cluster
    with Client(cluster.address) as client:
        films = [client.submit(FILM | {"title": f"queued {i}"}) for i in range(4)]
        deadline = time.monotonic() + 300
        while (first := films[0].get()).phases_done == 0:
            assert time.monotonic() < deadline and first.state in RUNNING, first
            time.sleep(0.2)
        cluster.add_node("extra", {"rf_high": 1})
        while ("high", "extra") not in _phase_hosts(cluster, films):
            assert time.monotonic() < deadline, "the joining host got no high phase"
            if all(f.get().phases_done == f.get().phases_total for f in films[-2:]):
                films.append(client.submit(FILM | {"title": f"queued {len(films)}"}))
            time.sleep(1.0)
        finals = [wait_final(f, timeout=600) for f in films]
        streams = [np.stack([f.to_array() for f in film.frames()]) for film in films]
        hosts = set(_phase_hosts(cluster, films))
        failures = [e for film in films for e in film.executions()
                    if e.kind == pb.Execution.KIND_FAILURE]
    assert all(f.state == pb.Film.STATE_SUCCEEDED for f in finals), finals
    expected = inline_frames(FILM)
    assert all(np.array_equal(frames, expected) for frames in streams)
    assert {("high", "high"), ("high", "extra"), ("low", "low")} <= hosts, hosts
    assert not failures, failures  # growing the pool lost nothing

    # Leaving: Ray drains the node, Serve stops the replica there (and keeps one High
    # replica on the high host); the replica drains from the director and leaves.
    cluster.drain_node("extra")
    deadline = time.monotonic() + 180
    while _replicas(cluster.hosts["extra"], "PoolHigh") or not _replicas(cluster.hosts["high"],
                                                                        "PoolHigh"):
        assert time.monotonic() < deadline, "the drained host still holds a High replica"
        time.sleep(1.0)
    assert cluster.stop_node("extra"), "the drained host did not shut down by itself"
    done, frames, log = render(cluster, FILM | {"title": "after the host left"})
    assert done.state == pb.Film.STATE_SUCCEEDED, done.state_reason
    assert np.array_equal(frames, expected)
    assert not [e for e in log if e.kind == pb.Execution.KIND_FAILURE], log
    used = {cluster.host_of(w) for e in log if e.kind == pb.Execution.KIND_PHASE
            for w in e.worker_ids}
    assert used == {"high", "low"}, used
