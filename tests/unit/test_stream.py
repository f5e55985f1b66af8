"""The film-ordered frame stream: any arrival order in, film order out, each frame once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from farm.stitch.stream import FrameRouter, FrameStream, StreamClosed


def test_out_of_order_and_duplicate_frames_leave_in_film_order_once():
    s = FrameStream([("a", 2), ("b", 3)])
    for scene, i in [("b", 2), ("b", 0), ("a", 1), ("b", 0), ("a", 0), ("b", 1), ("a", 1)]:
        s.put(scene, i, f"{scene}{i}")
    got = [(f.scene_id, f.index, f.film_index, f.frame) for f in s]
    assert got == [("a", 0, 0, "a0"), ("a", 1, 1, "a1"), ("b", 0, 2, "b0"), ("b", 1, 3, "b1"),
                   ("b", 2, 4, "b2")]
    assert s.put("a", 0, "again") is False


def test_frames_are_released_as_soon_as_all_earlier_ones_are_in():
    s = FrameStream([("a", 3)])
    s.put("a", 1, 1)
    with pytest.raises(TimeoutError):
        s.get(timeout=0.05)
    s.put("a", 0, 0)
    assert s.get(timeout=1).frame == 0 and s.get(timeout=1).frame == 1


def test_consumer_in_another_thread_sees_every_frame():
    s = FrameStream([("a", 50)])
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.extend(f.index for f in s))
    t.start()
    for i in reversed(range(50)):
        s.put("a", i, i)
    t.join(timeout=5)
    assert seen == list(range(50))


def test_async_iteration():
    s = FrameStream([("a", 3)])
    for i in range(3):
        s.put("a", i, i)

    async def collect() -> list[int]:
        return [f.index async for f in s]

    assert asyncio.run(collect()) == [0, 1, 2]


def test_close_with_error_ends_the_stream_with_the_reason():
    s = FrameStream([("a", 3)])
    s.put("a", 0, 0)
    s.close("film FAILED: decode of a/u0 failed 3 times")
    assert s.get().index == 0
    with pytest.raises(StreamClosed, match="decode of a/u0 failed"):
        s.get()


def test_resume_from_a_scene_and_frame_skips_earlier_frames():
    s = FrameStream([("a", 2), ("b", 2)], start=("b", 1))
    for scene, i in [("a", 0), ("a", 1), ("b", 0), ("b", 1)]:
        s.put(scene, i, i)
    assert [(f.scene_id, f.index) for f in s] == [("b", 1)]


def test_router_forwards_by_film():
    r = FrameRouter()
    r.streams["f1"] = FrameStream([("a", 1)])
    r.frame("f1", "a", 0, "x")
    r.frame("unknown", "a", 0, "y")  # frames of films nobody streams are ignored
    assert r.streams["f1"].get().frame == "x"
