"""The API end to end on a real server (127.0.0.1, tiny model): the SDK round trip,
frames equal to the inline render, resumable streams, the asyncio client."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from farm.api import chunks, convert
from farm.client import AsyncClient
from farm.media.writers import probe_video
from tests.serving.api.helpers import TOKEN, tiny_board
from tests.serving.api.proxy import CuttingProxy

pytestmark = [pytest.mark.grpc, pytest.mark.model]


def inline_frames(board: dict) -> list[np.ndarray]:
    """The same film rendered by the embedded farm in this process (no API)."""
    from farm.local import LocalFarm
    from farm.spec.film import resolve_film
    from farm.spec.profiles import profile_for
    from farm.spec.storyboard import parse_storyboard

    film = resolve_film(parse_storyboard(board), profile_for("t2v-a14b"), model="tiny")
    farm = LocalFarm("tiny")
    _, stream = farm.submit(film)
    farm.run()
    return [item.frame for item in stream]


def test_sdk_round_trip_of_a_two_scene_film(connect, tmp_path):
    client = connect("alice")
    handle = client.submit(tiny_board(), request_id="round-trip-1")
    assert handle.name.startswith("films/")
    assert convert.state_word(handle.film.state) == "QUEUED"
    events = list(handle.watch())
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].WhichOneof("event") == "state_change"
    assert convert.state_word(events[-1].state) == "SUCCEEDED"
    # 2 scenes x 2 experts
    assert sum(e.WhichOneof("event") == "phase_finished" for e in events) == 4
    film = handle.get()
    assert (film.frames_done, film.frames_total, film.phases_done, film.phases_total) == (
        18, 18, 4, 4)
    assert [(s.id, s.frames, s.frames_done) for s in film.scenes] == [("s0", 9, 9), ("s1", 9, 9)]
    assert film.steps == 4 and film.shift == 12.0 and dict(film.scenes[0].guidance_per_expert) == {
        "high": 4.0, "low": 3.0}  # the server's resolved defaults
    assert film.HasField("time_to_first_frame") and film.create_time.ToNanoseconds() > 0
    frames = list(handle.frames())
    assert [(f.scene_id, f.index, f.film_index) for f in frames] == [
        (f"s{i}", k, 9 * i + k) for i in range(2) for k in range(9)]
    handle.download(tmp_path / "film.mp4")
    assert probe_video(tmp_path / "film.mp4")["frames"] == 18
    *pngs, manifest = handle.download(tmp_path / "frames", scene_id="s1")
    assert [p.name for p in pngs] == [f"s1.{k:04d}.png" for k in range(1, 10)]
    assert [p.read_bytes() for p in pngs] == [f.data for f in frames[9:]]
    assert manifest.name == "provenance.json"  # the scene's PNGs, hashed
    # AIP-155: the same request_id returns the same film, not a second one
    again = client.submit(tiny_board(), request_id="round-trip-1")
    assert again.name == handle.name
    assert handle.name in [f.name for f in client.list()]
    assert handle.name in [f.name for f in client.list(state="SUCCEEDED", page_size=1)]
    assert handle.name not in [f.name for f in client.list(state="RUNNING")]


def test_frames_received_equal_the_inline_render(connect):
    board = tiny_board()
    handle = connect("alice").submit(board)
    png = [f.to_array() for f in handle.frames(encoding="png")]
    raw = list(handle.frames(encoding="rgb24"))
    jpeg = [f.to_array() for f in handle.frames(encoding="jpeg", jpeg_quality=95)]
    expected = inline_frames(board)
    assert len(png) == len(raw) == len(jpeg) == len(expected) == 18
    for got_png, got_raw, got_jpeg, want in zip(png, raw, jpeg, expected, strict=True):
        np.testing.assert_array_equal(got_png, want)
        np.testing.assert_array_equal(got_raw.to_array(), want)
        assert (got_raw.width, got_raw.height, len(got_raw.data)) == (32, 32, 32 * 32 * 3)
        assert got_jpeg.shape == want.shape  # lossy: close, not equal
        assert np.abs(got_jpeg.astype(int) - want.astype(int)).mean() < 12


def test_frames_resume_from_any_frame_exactly_once(connect):
    handle = connect("alice").submit(tiny_board(scenes=3, frames=5))
    stream = handle.frames()
    first = [next(stream) for _ in range(4)]
    stream.close()  # the consumer goes away mid-film: the call is cancelled
    rest = list(handle.frames(start=first[-1].film_index + 1))
    got = [f.film_index for f in first + rest]
    assert got == list(range(15))
    from_scene = list(handle.frames(start=("s1", 3)))
    assert [(f.scene_id, f.index) for f in from_scene] == [("s1", 3), ("s1", 4)] + [
        ("s2", k) for k in range(5)]
    assert [f.data for f in from_scene] == [f.data for f in (first + rest)[8:]]


def test_a_dropped_connection_mid_stream_is_resumed_without_loss_or_duplicates(
        api_server, connect, monkeypatch):
    # Small chunks: each 32x32 RGB24 frame travels as 4 messages, so the cut lands inside
    # a frame too; the SDK must drop the partial frame and resume from its start.
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 1000)
    handle = connect("alice").submit(tiny_board(scenes=2, frames=13))
    proxy = CuttingProxy(api_server.address, cut_after=20_000)
    try:
        via_proxy = connect("alice", address=proxy.address).film(handle.name)
        frames = list(via_proxy.frames(encoding="rgb24"))
    finally:
        proxy.close()
    assert proxy.cuts == 1  # the connection really was cut mid-stream
    assert [f.film_index for f in frames] == list(range(26))
    direct = list(handle.frames(encoding="rgb24"))
    assert [f.data for f in frames] == [f.data for f in direct]


def test_the_async_client_resumes_a_dropped_stream_too(api_server, connect):
    handle = connect("bob").submit(tiny_board(scenes=2, frames=13))
    proxy = CuttingProxy(api_server.address, cut_after=8_000)

    async def frames() -> list:
        async with AsyncClient(proxy.address, token=TOKEN["bob"]) as client:
            return [f async for f in client.film(handle.name).frames(encoding="rgb24")]

    try:
        got = asyncio.run(frames())
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert [f.film_index for f in got] == list(range(26))
    assert [f.data for f in got] == [f.data for f in handle.frames(encoding="rgb24")]


def test_async_client_round_trip(api_server, tmp_path):
    async def run() -> tuple[list, str, int]:
        async with AsyncClient(api_server.address, token=TOKEN["bob"]) as client:
            handle = await client.submit(tiny_board(scenes=1, frames=5))
            frames = [f async for f in handle.frames()]
            final = await handle.wait()
            await handle.download(tmp_path / "a.mp4")
            names = [f.name async for f in client.list()]
            assert handle.name in names
            return frames, convert.state_word(final.state), len(names)

    frames, state, _ = asyncio.run(run())
    assert state == "SUCCEEDED"
    assert [(f.scene_id, f.index) for f in frames] == [("s0", k) for k in range(5)]
    assert probe_video(tmp_path / "a.mp4")["frames"] == 5
