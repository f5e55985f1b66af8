"""The Ray Serve runtime on a real local cluster (num_cpus=2): the same films, scheduler
and model layer as the inline executor, with frames bit-identical to it."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def storyboard(scenes: list[dict]) -> dict:
    return {"title": "ray", "fps": 16, "width": 32, "height": 32, "steps": 6, "scenes": scenes}


TWO_SCENES = storyboard([{"id": "a", "prompt": "a fox", "frames": 9, "seed": 1},
                         {"id": "b", "prompt": "a boat", "frames": 17, "seed": 2}])
# A long scene in windows mode: a gang that spans both replicas of a pool.
WINDOWS = storyboard([{"id": "w", "prompt": "waves", "frames": 41, "seed": 3, "window": 6,
                       "overlap": 2}])


def inline_frames(board: dict) -> np.ndarray:
    import threading

    from farm.local import LocalFarm
    from farm.spec.film import resolve_film
    from farm.spec.profiles import T2V_A14B
    from farm.spec.storyboard import parse_storyboard

    farm = LocalFarm("tiny")
    _, stream = farm.submit(resolve_film(parse_storyboard(board), T2V_A14B, model="tiny"))
    t = threading.Thread(target=farm.run)
    t.start()
    frames = np.stack([f.frame for f in stream])
    t.join()
    return frames


def wait_final(director, film_id: str, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = director.get_film.remote(film_id).result()
        if info.state.is_final:
            return info
        time.sleep(0.25)
    raise TimeoutError(f"film {film_id} not finished after {timeout} s")


def whole_fleet(director, timeout: float = 120.0) -> None:
    """Wait until exactly the configured replicas (2 high, 2 low, 2 decode) are alive, no dead
    one is still registered and none holds work: replicas killed by earlier tests
    (test_chaos_ray.py) are replaced and forgotten, and work an earlier test left running
    has ended, before a test that counts replicas submits (a busy decoder takes no band)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = director.live_workers.remote().result()
        registered = director.live_workers.remote(float("inf")).result()  # dead ones too
        held = director.assignments.remote().result()
        if live == registered and [sum(w.startswith(p) for w in live)
                                   for p in ("high", "low", "decode")] == [2, 2, 2] and not held:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the fleet is not whole after {timeout} s: {live}")


def served_frames(director, film_id: str) -> np.ndarray:
    gen = director.options(stream=True).stream_frames.remote(film_id)
    return np.stack([np.asarray(Image.open(io.BytesIO(png))) for _, _, _, png in gen])


def test_film_through_serve_equals_inline(ray_app):
    info = ray_app.create_film.remote(TWO_SCENES).result()
    done = wait_final(ray_app, info.film_id)
    assert done.state.value == "SUCCEEDED", done.reason
    assert np.array_equal(served_frames(ray_app, info.film_id), inline_frames(TWO_SCENES))


def gang_film_equals_inline(director, board: dict) -> tuple[str, dict]:
    """On a whole fleet: the film succeeds with the inline frames; (film id, work log)."""
    whole_fleet(director)
    info = director.create_film.remote(board).result()
    done = wait_final(director, info.film_id)
    assert done.state.value == "SUCCEEDED", done.reason
    assert np.array_equal(served_frames(director, info.film_id), inline_frames(board))
    return info.film_id, director.work_log.remote().result()


def test_gang_spanning_replicas_equals_inline(ray_app):
    film_id, log = gang_film_equals_inline(ray_app, WINDOWS)
    gang = [w for w, entries in log.items()
            if any(t.startswith(film_id) and k == "phase" for k, _, t in entries)]
    assert len([w for w in gang if w.startswith("high")]) == 2  # the gang used both replicas


# 48x48: the director's gang table (conftest) puts each phase on a CFG gang of 2 replicas.
CFG_GANG = {**storyboard([{"id": "c", "prompt": "a lighthouse", "frames": 9, "seed": 4}]),
            "width": 48, "height": 48}


def test_cfg_gangs_across_replicas_equal_inline(ray_app):
    film_id, log = gang_film_equals_inline(ray_app, CFG_GANG)
    for pool in ("high", "low"):  # both replicas of the pool ran the same phase task
        # (the log also names replicas earlier tests replaced: only this film's count)
        tasks = [{t for k, _, t in entries if k == "phase" and t.startswith(film_id)}
                 for w, entries in log.items() if w.startswith(pool)]
        tasks = [t for t in tasks if t]
        assert len(tasks) == 2 and tasks[0] & tasks[1], (pool, tasks)


# 256 px wide: 32 latent columns, so the decode runs in 2 bands (farm.plan.segments); with
# both decode replicas idle each decodes one, and they all-gather the columns.
BANDS = {**storyboard([{"id": "d", "prompt": "a field", "frames": 9, "seed": 5}]), "width": 256}


def test_band_decode_across_replicas_equals_inline(ray_app):
    film_id, log = gang_film_equals_inline(ray_app, BANDS)
    decoders = [w for w, entries in log.items()
                if any(k == "decode" and t.startswith(film_id) for k, _, t in entries)]
    assert len(decoders) == 2, decoders


def test_each_expert_replica_ran_only_its_expert(ray_app):
    info = ray_app.create_film.remote(TWO_SCENES).result()
    wait_final(ray_app, info.film_id)
    log = ray_app.work_log.remote().result()
    ran = {w: {(k, e) for k, e, _ in entries} for w, entries in log.items()}
    assert any(w.startswith("high") for w in ran) and any(w.startswith("low") for w in ran)
    for worker, work in ran.items():
        pool = worker.split("-")[0]
        if pool in ("high", "low"):
            assert work == {("phase", pool)}, (worker, work)
        elif pool == "decode":  # (the media models' pools are tests/serving/test_ray_media)
            assert {k for k, _ in work} <= {"prepare", "decode", "image"}


def test_replica_killed_mid_film_still_gives_identical_frames(ray_app):
    import ray

    board = storyboard([{"id": f"s{i}", "prompt": f"scene {i}", "frames": 17, "seed": i}
                        for i in range(4)])
    info = ray_app.create_film.remote(board).result()
    victim = None
    for _ in range(2000):  # kill a high-noise replica while it runs a phase of this film
        held = ray_app.assignments.remote().result()
        victim = next((w for w, tasks in held.items() if w.startswith("high")
                       and any(t.startswith(info.film_id) for t in tasks)), None)
        if victim:
            break
        time.sleep(0.005)
    assert victim is not None, "no high-noise replica was ever busy with the film"
    replica = victim.split("-")[1]  # worker ids are <pool>-<Serve replica id>-<n>
    ray.kill(ray.get_actor(f"SERVE_REPLICA::reelfarm#PoolHigh#{replica}", namespace="serve"),
             no_restart=False)
    done = wait_final(ray_app, info.film_id)
    assert done.state.value == "SUCCEEDED", done.reason
    events = list(ray_app.options(stream=True).watch.remote(info.film_id))
    assert any(e.kind == "retry" and victim in e.message + " ".join(e.worker_ids) for e in events)
    assert np.array_equal(served_frames(ray_app, info.film_id), inline_frames(board))


def test_grpc_api_through_the_serve_proxy(ray_app):
    """The FilmService, served by Ray Serve's gRPC proxy: SDK round trip and error codes."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from farm.client.errors import InvalidArgumentError, NotFoundError
    from farm.client.sync import Client
    from tests.serving.conftest import GRPC_PORT

    target = f"127.0.0.1:{GRPC_PORT}"
    with Client(target) as client:
        film = client.submit(TWO_SCENES)
        assert film.wait().state == film.get().state
        frames = np.stack([f.to_array() for f in film.frames()])
        assert np.array_equal(frames, inline_frames(TWO_SCENES))
        with pytest.raises(NotFoundError):
            client.get("films/nonexistent")
        from farm.api.protos import pb

        bad = pb.CreateFilmRequest(request_id="bad-width", film=pb.Film(
            title="bad", fps=16, width=33, height=32,
            scenes=[pb.Scene(id="a", prompt="p", frames=9)]))
        with pytest.raises(InvalidArgumentError) as info:
            client.call("CreateFilm", bad)  # the server's validation, not the SDK's
        assert any(field == "film.width" for field, _ in info.value.violations)
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
