"""Durable films on the embedded farm: a restarted director resumes from its last
completed phases (nothing that finished runs again), corrupt checkpoints are detected and
recomputed, idempotency survives a restart, re-render recomputes only what covers the
frames, and pause / resume / priority / retry work on live films."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from farm.director.errors import FailedPrecondition
from farm.local import LocalFarm, local_director
from farm.sched.output import FilmState
from tests.helpers import make_film, scene

pytestmark = pytest.mark.model
FILM = make_film([scene(f"s{i}", 17, seed=i) for i in range(3)], steps=6, width=32, height=32)


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "artifacts", f"sqlite:///{tmp_path}/jobs.db"


def reference() -> np.ndarray:
    farm = LocalFarm("tiny")
    _, stream = farm.submit(FILM)
    farm.run()
    return np.stack([f.frame for f in stream])


def archived(director, film_id: str) -> np.ndarray:
    return np.stack([np.asarray(Image.open(f.path))
                     for f in director.frames(film_id, "a", timeout=30)])


def crash_after(paths, phases: int) -> str:
    """Start a director, let `phases` phases finish, stop it; the film id."""
    d = local_director("tiny", paths[0], db=paths[1]).start()
    info = d.create_film(FILM, tenant="a", request_id="r1")
    for e in d.watch(info.film_id, "a", timeout=60):
        if e.kind == "phase" and e.phases_done >= phases:
            break
    d.stop()
    return info.film_id


def finish(paths, film_id: str):
    d = local_director("tiny", paths[0], db=paths[1]).start()
    events = list(d.watch(film_id, "a", timeout=120))
    return d, events


def phase_runs(d, film_id: str) -> Counter:
    return Counter((x.unit_id, x.phase_index) for x in d.executions(film_id, "a")
                   if x.kind == "phase" and x.ok)


def test_restart_resumes_and_recomputes_nothing_that_finished(paths):
    film_id = crash_after(paths, phases=3)
    d, events = finish(paths, film_id)
    try:
        assert events[-1].state == FilmState.SUCCEEDED
        assert any("resumed after a director restart" in e.message for e in events)
        runs = phase_runs(d, film_id)
        assert len(runs) == 6 and set(runs.values()) == {1}  # every phase exactly once
        assert np.array_equal(archived(d, film_id), reference())
        # idempotency by request id holds across the restart
        assert d.create_film(FILM, tenant="a", request_id="r1").film_id == film_id
    finally:
        d.stop()


def test_corrupt_checkpoint_is_detected_and_its_phase_recomputed(paths):
    film_id = crash_after(paths, phases=3)
    handoffs = sorted((paths[0] / "films" / film_id / "handoffs").rglob("*.safetensors"))
    assert handoffs
    victim = handoffs[-1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    victim.write_bytes(bytes(data))
    d, events = finish(paths, film_id)
    try:
        assert events[-1].state == FilmState.SUCCEEDED
        assert np.array_equal(archived(d, film_id), reference())
        runs = phase_runs(d, film_id)
        assert max(runs.values()) == 2  # the unit of the corrupt checkpoint ran again
    finally:
        d.stop()


def test_rerender_recomputes_only_units_covering_the_range(paths):
    d = local_director("tiny", paths[0], db=paths[1]).start()
    try:
        info = d.create_film(FILM, tenant="a")
        assert list(d.watch(info.film_id, "a", timeout=60))[-1].state == FilmState.SUCCEEDED
        frames_dir = paths[0] / "films" / info.film_id / "frames" / "s1"
        for png in list(frames_dir.glob("*.png"))[:5]:
            png.unlink()  # damaged deliverables
        (paths[0] / "films" / info.film_id / "film.mp4").unlink()
        d.rerender(info.film_id, "a", "s1", 2, 9)
        events = list(d.watch(info.film_id, "a", after=len(events_of(d, info.film_id)) - 1,
                              timeout=60))
        assert events[-1].state == FilmState.SUCCEEDED
        runs = phase_runs(d, info.film_id)
        assert {k: v for k, v in runs.items() if v > 1} == {("s1/u0", 0): 2, ("s1/u0", 1): 2}
        assert np.array_equal(archived(d, info.film_id), reference())
        assert (paths[0] / "films" / info.film_id / "film.mp4").is_file()
        with pytest.raises(ValueError, match="0 <= first <= last < 17"):
            d.rerender(info.film_id, "a", "s1", 5, 17)
    finally:
        d.stop()


def events_of(d, film_id: str) -> list:
    return d._entry(film_id, "a").events


def test_pause_resume_priority_and_retry(paths):
    d = local_director("tiny", paths[0], db=paths[1]).start()
    try:
        info = d.create_film(FILM, tenant="a")
        assert d.pause_film(info.film_id, "a").state == FilmState.PAUSED
        with pytest.raises(FailedPrecondition, match="not PAUSED|only QUEUED"):
            d.pause_film(info.film_id, "a")
        assert d.set_priority(info.film_id, "a", 90).priority == 90
        assert d.resume_film(info.film_id, "a").state in (FilmState.QUEUED, FilmState.RUNNING)
        assert list(d.watch(info.film_id, "a", timeout=60))[-1].state == FilmState.SUCCEEDED
        with pytest.raises(FailedPrecondition, match="only FAILED"):
            d.retry_film(info.film_id, "a")
        assert d.store.film(info.film_id).priority == 90
    finally:
        d.stop()


def test_finished_films_and_their_frames_survive_a_restart(paths):
    d = local_director("tiny", paths[0], db=paths[1]).start()
    info = d.create_film(FILM, tenant="a")
    list(d.watch(info.film_id, "a", timeout=60))
    d.stop()
    d2 = local_director("tiny", paths[0], db=paths[1]).start()
    try:
        again = d2.get_film(info.film_id, "a")
        assert again.state == FilmState.SUCCEEDED and again.frames_done == FILM.num_frames
        assert np.array_equal(archived(d2, info.film_id), reference())
        assert Path(d2.mp4_path(info.film_id, "a")).is_file()
        assert ([e.seq for e in d2.watch(info.film_id, "a", timeout=5)][-1]
                == len(events_of(d2, info.film_id)))
    finally:
        d2.stop()


def test_a_film_of_a_model_no_longer_served_fails_saying_so_until_served_again(paths):
    """Restarted serving another model, the farm does not wait for workers that never
    come: the film FAILS naming its model and what is served; served again, a retry
    finishes it from its kept phases."""
    film_id = crash_after(paths, phases=2)
    d = local_director("toy", paths[0], db=paths[1]).start()
    try:
        info = d.get_film(film_id, "a")
        assert info.state == FilmState.FAILED
        assert "model 'tiny' is not served by this farm (it serves toy)" in info.reason
        with pytest.raises(FailedPrecondition, match="'tiny' is not served"):
            d.retry_film(film_id, "a")
    finally:
        d.stop()
    d = local_director("tiny", paths[0], db=paths[1]).start()
    try:
        assert d.get_film(film_id, "a").state == FilmState.FAILED  # as the store has it
        d.retry_film(film_id, "a")
        assert list(d.watch(film_id, "a", timeout=120))[-1].state == FilmState.SUCCEEDED
        assert np.array_equal(archived(d, film_id), reference())
        assert all(n == 1 for n in phase_runs(d, film_id).values())  # kept phases kept
    finally:
        d.stop()
