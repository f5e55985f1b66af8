"""Render-farm controls through the SDK on a real server (127.0.0.1, tiny model, durable
job store): pause / resume / priority, re-render of a frame range, retry of a FAILED film,
the render log (ListExecutions), the asyncio client; every RPC has its adapters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import numpy as np
import pytest

from farm.api import convert
from farm.api.protos import pb
from farm.client import AsyncClient, InvalidArgumentError
from farm.media.writers import probe_video
from tests.serving.api.helpers import LIVE, TOKEN, tiny_board, wait_final

pytestmark = [pytest.mark.grpc, pytest.mark.model]


def word(film) -> str:
    return convert.state_word(film.state)


def phase_runs(handle) -> Counter:
    """(unit, phase index) -> how often it ran, from the render log."""
    return Counter((e.unit_id, e.phase_index) for e in handle.executions()
                   if e.kind == pb.Execution.KIND_PHASE)


def decode_runs(handle) -> Counter:
    return Counter(e.unit_id for e in handle.executions() if e.kind == pb.Execution.KIND_DECODE)


def test_pause_priority_and_resume_show_in_get_and_watch(connect):
    handle = connect("alice").submit(tiny_board(scenes=3), priority=30)
    assert handle.film.priority == 30
    assert word(handle.pause()) == "PAUSED"
    time.sleep(1.0)  # a phase already running may finish; nothing new starts
    held = handle.get()
    time.sleep(1.0)
    still = handle.get()
    assert word(still) == "PAUSED" and still.phases_done == held.phases_done
    assert still.frames_done < still.frames_total
    assert handle.set_priority(80).priority == 80
    assert handle.get().priority == 80
    assert word(handle.resume()) in LIVE
    assert word(handle.wait()) == "SUCCEEDED"
    events = list(handle.watch())
    kinds = [(e.WhichOneof("event"), word(e)) for e in events]
    paused = kinds.index(("state_change", "PAUSED"))
    priority = next(i for i, e in enumerate(events) if e.WhichOneof("event") == "priority_changed")
    assert events[priority].priority_changed.priority == 80
    resumed = next(i for i, e in enumerate(events)
                   if i > priority and e.WhichOneof("event") == "state_change")
    assert paused < priority < resumed and word(events[resumed]) in LIVE
    assert kinds[-1] == ("state_change", "SUCCEEDED")
    assert all(runs == 1 for runs in phase_runs(handle).values())  # paused, not restarted


def test_rerender_recomputes_only_the_units_covering_the_range(api_farm, connect, tmp_path):
    _, director = api_farm
    handle = connect("alice").submit(tiny_board(scenes=3))
    assert word(wait_final(handle)) == "SUCCEEDED"
    before = [f.to_array() for f in handle.frames()]
    handle.download(tmp_path / "before.mp4")
    mp4 = director.mp4_path(handle.name.split("/")[1], "alice")
    built = mp4.stat().st_mtime_ns
    assert set(phase_runs(handle).values()) == {1}

    film = handle.rerender("s1", 3, 5)  # frames 3..5 of s1, 0-based inclusive
    assert word(film) in LIVE
    assert word(wait_final(handle)) == "SUCCEEDED"
    assert phase_runs(handle) == {("s0/u0", 0): 1, ("s0/u0", 1): 1, ("s1/u0", 0): 2,
                                  ("s1/u0", 1): 2, ("s2/u0", 0): 1, ("s2/u0", 1): 1}
    assert decode_runs(handle) == {"s0": 1, "s1": 2, "s2": 1}
    # same seeds: identical pixels (the files differ: each signing is a new credential)
    assert all(np.array_equal(f.to_array(), b) for f, b in zip(handle.frames(), before,
                                                               strict=True))
    assert mp4.stat().st_mtime_ns > built  # the mp4 was rebuilt
    handle.download(tmp_path / "after.mp4")
    video = probe_video(tmp_path / "after.mp4")
    assert video["frames"] == probe_video(tmp_path / "before.mp4")["frames"] == 27
    # h264 is lossy (and libx264 not byte-reproducible here): close to the PNGs, frame by frame
    pngs = [f.to_array().astype(int) for f in handle.frames()]
    assert max(np.abs(png - got).mean() for png, got in zip(pngs, video["images"], strict=True)) < 4
    assert any("re-render of s1 frames 3..5" in e.message for e in handle.watch())


@pytest.fixture
def failing_phases(api_farm, monkeypatch):
    """Make phase 1 of scene s1 fail on the server for the films in the returned set."""
    executor = api_farm[1].engine.executor
    films: set[str] = set()
    run = executor._phase

    def phase(task):
        if (task.film_id in films and task.phase_index == 1
                and task.members[0].segment_id.startswith("s1/")):
            raise RuntimeError("injected fault")
        return run(task)

    monkeypatch.setattr(executor, "_phase", phase)
    return films


def test_retry_runs_the_failed_work_again_and_keeps_the_rest(connect, failing_phases):
    handle = connect("alice").submit(tiny_board(scenes=3))
    failing_phases.add(handle.name.split("/")[1])
    failed = wait_final(handle)
    assert word(failed) == "FAILED" and failed.frames_done == 9  # s0 delivered, s1 not
    failures = [e for e in handle.executions() if e.kind == pb.Execution.KIND_FAILURE]
    assert failures and all("injected fault" in e.message and not e.succeeded for e in failures)
    failing_phases.clear()  # the fault is fixed
    assert word(handle.retry()) in LIVE
    done = wait_final(handle)
    assert word(done) == "SUCCEEDED" and done.frames_done == 27
    runs = phase_runs(handle)
    # finished work kept: s0 and s1's first phase ran once; s1's failed phase once, now
    assert runs == {("s0/u0", 0): 1, ("s0/u0", 1): 1, ("s1/u0", 0): 1, ("s1/u0", 1): 1,
                    ("s2/u0", 0): 1, ("s2/u0", 1): 1}
    assert decode_runs(handle) == {"s0": 1, "s1": 1, "s2": 1}


def test_list_executions_pages_through_the_render_log(connect):
    client = connect("alice")
    handle = client.submit(tiny_board(scenes=2, frames=5))
    wait_final(handle)
    log = list(handle.executions())
    assert [e.name for e in log] == [f"{handle.name}/executions/{i}" for i in range(1, 7)]
    # in each scene's order (the scheduler may interleave the scenes: a worker warm for the
    # high-noise expert takes s1's high phase before s0's low one)
    for scene in ("s0", "s1"):
        assert [(convert.execution_kind_word(e.kind), e.phase_index if e.HasField(
            "phase_index") else None) for e in log if e.unit_id.split("/")[0] == scene] == [
            ("PHASE", 0), ("PHASE", 1), ("DECODE", None)]
    phase = log[0]
    decode = next(e for e in log if e.kind == pb.Execution.KIND_DECODE)
    assert (phase.phase_index, phase.expert, list(phase.worker_ids)) == (0, "high", ["local"])
    assert phase.succeeded and phase.duration.ToNanoseconds() > 0 and phase.end_time.seconds > 0
    assert not decode.HasField("phase_index") and decode.message == "frames 0..4"
    pages, token = [], ""
    while True:
        page = client.call("ListExecutions", pb.ListExecutionsRequest(
            parent=handle.name, page_size=4, page_token=token))
        pages.append([e.name for e in page.executions])
        token = page.next_page_token
        if not token:
            break
    assert pages == [[e.name for e in log[:4]], [e.name for e in log[4:]]]
    first = client.call("ListExecutions", pb.ListExecutionsRequest(parent=handle.name, page_size=1))
    other = client.submit(tiny_board(scenes=1, frames=5))
    with pytest.raises(InvalidArgumentError) as exc:  # a token is only good for its own film
        client.call("ListExecutions", pb.ListExecutionsRequest(
            parent=other.name, page_token=first.next_page_token))
    assert [f for f, _ in exc.value.violations] == ["page_token"]
    wait_final(other)


def test_the_async_client_has_the_controls_too(api_server):
    async def run() -> tuple[list[str], Counter]:
        async with AsyncClient(api_server.address, token=TOKEN["bob"]) as client:
            handle = await client.submit(tiny_board(scenes=2, frames=5), priority=10)
            states = [word(await handle.pause())]
            states.append(str((await handle.set_priority(70)).priority))
            states.append(word(await handle.resume()))
            states.append(word(await handle.wait()))
            states.append(word(await handle.rerender("s0", 0, 0)))
            states.append(word(await handle.wait()))
            runs = Counter([(e.unit_id, e.phase_index) async for e in handle.executions()
                            if e.kind == pb.Execution.KIND_PHASE])
            return states, runs

    states, runs = asyncio.run(run())
    assert states[2] in LIVE and states[4] in LIVE
    assert states[:2] + states[3:4] + states[5:] == ["PAUSED", "70", "SUCCEEDED", "SUCCEEDED"]
    assert runs == {("s0/u0", 0): 2, ("s0/u0", 1): 2, ("s1/u0", 0): 1, ("s1/u0", 1): 1}


def test_every_rpc_has_a_method_in_both_adapters():
    """Both adapters bind their methods from the descriptor's table (farm.api.rpcs)."""
    import inspect

    from farm.api.rpcs import film_service_rpcs
    from farm.api.server import FilmServicer
    from farm.api.service import FilmApi

    pytest.importorskip("ray")
    from serving.director import DirectorServer

    rpcs = film_service_rpcs()
    assert [r.name for r in rpcs] == [
        m.name for m in pb.DESCRIPTOR.services_by_name["FilmService"].methods]
    assert {"UpdateFilm", "PauseFilm", "ResumeFilm", "RetryFilm", "RerenderFilm",
            "ListExecutions"} <= {r.name for r in rpcs}
    assert [r.method for r in rpcs if r.streaming] == ["watch_film", "stream_frames",
                                                       "get_artifact"]
    assert [r.method for r in rpcs if r.client_streaming] == ["upload_media"]
    for rpc in rpcs:
        assert callable(getattr(FilmApi, rpc.method, None)), f"FilmApi lacks {rpc.method}"
        for adapter in (FilmServicer, DirectorServer):
            method = adapter.__dict__[rpc.name]
            assert inspect.isgeneratorfunction(method) == rpc.streaming, (adapter, rpc.name)
        # Serve hands a client stream to a coroutine (grpc.server: a plain method).
        assert inspect.iscoroutinefunction(DirectorServer.__dict__[rpc.name]) == (
            rpc.client_streaming), rpc.name
