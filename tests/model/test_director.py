"""The Director over the embedded farm: idempotent creates, tenants, watch, resumable
frames from the archive, cancel, quotas, the finished mp4."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from farm.director.errors import (
    FailedPrecondition,
    FilmNotFound,
    PermissionDenied,
    ResourceExhausted,
)
from farm.local import local_director
from farm.media.writers import probe_video
from farm.sched.output import FilmState
from tests.helpers import make_film, scene

pytestmark = pytest.mark.model


@pytest.fixture
def director(tmp_path):
    d = local_director("tiny", tmp_path / "artifacts", max_unfinished_per_tenant=3).start()
    yield d
    d.stop()


def film(n: int = 2, frames: int = 9):
    return make_film([scene(f"s{i}", frames, seed=i) for i in range(n)], steps=4, width=32,
                     height=32)


def test_film_renders_watch_and_frames(director):
    info = director.create_film(film(), tenant="a", request_id="r1")
    assert info.name.startswith("films/") and info.state == FilmState.QUEUED
    events = list(director.watch(info.film_id, "a", timeout=60))
    assert events[-1].state == FilmState.SUCCEEDED and events[-1].kind == "state"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(e.kind == "phase" for e in events) == 4  # 2 scenes x 2 experts
    done = director.get_film(info.film_id, "a")
    assert (done.frames_done, done.frames_total, done.phases_done) == (18, 18, 4)
    assert done.time_to_first_frame is not None and done.time_to_first_frame > 0
    frames = list(director.frames(info.film_id, "a", timeout=10))
    assert [(f.scene_id, f.index) for f in frames] == [
        (f"s{i}", k) for i in range(2) for k in range(9)]
    resumed = list(director.frames(info.film_id, "a", scene_id="s1", index=7, timeout=10))
    assert [(f.scene_id, f.index, f.film_index) for f in resumed] == [("s1", 7, 16), ("s1", 8, 17)]
    video = probe_video(director.mp4_path(info.film_id, "a"))
    assert video["frames"] == 18
    # the archive PNGs decode to what the mp4 was made from (PNG is lossless)
    assert np.asarray(Image.open(frames[0].path)).shape == (32, 32, 3)


def test_create_is_idempotent_by_request_id(director):
    a = director.create_film(film(1), tenant="a", request_id="same")
    b = director.create_film(film(1), tenant="a", request_id="same")
    c = director.create_film(film(1), tenant="b", request_id="same")
    assert a.film_id == b.film_id != c.film_id


def test_tenants_are_isolated(director):
    info = director.create_film(film(1), tenant="a")
    with pytest.raises(PermissionDenied):
        director.get_film(info.film_id, "b")
    with pytest.raises(FilmNotFound):
        director.get_film("nope", "a")
    assert [f.film_id for f in director.list_films("b")[0]] == []
    assert [f.film_id for f in director.list_films("a")[0]] == [info.film_id]


def test_cancel_quota_and_paging(director):
    ids = [director.create_film(film(3, 17), tenant="q").film_id for _ in range(3)]
    with pytest.raises(ResourceExhausted, match="quota"):
        director.create_film(film(1), tenant="q")
    cancelled = director.cancel_film(ids[2], "q")
    assert cancelled.state == FilmState.CANCELLED
    with pytest.raises(FailedPrecondition):
        director.cancel_film(ids[2], "q")
    with pytest.raises(FailedPrecondition):
        director.mp4_path(ids[2], "q")
    page, after = director.list_films("q", page_size=2)
    rest, end = director.list_films("q", page_size=2, start=after)
    assert [f.film_id for f in page + rest] == ids and (after, end) == (2, None)
    assert [f.film_id for f in director.list_films("q", state=FilmState.CANCELLED)[0]] == [ids[2]]
    with pytest.raises(ValueError, match="start >= 0"):
        director.list_films("q", start=-1)
    for fid in ids[:2]:
        assert list(director.watch(fid, "q", timeout=60))[-1].state == FilmState.SUCCEEDED
