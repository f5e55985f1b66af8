"""Chaos on the Ray runtime (real processes): an expert replica is killed at a random,
seeded moment of each of 10 films. Every film must complete, its frames bit-identical to
the fault-free render, and its frame stream must carry every frame exactly once."""

from __future__ import annotations

import io
import random
import time

import numpy as np
import pytest
from PIL import Image

from tests.serving.test_ray_runtime import inline_frames, storyboard, wait_final

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SEEDS = range(10)
BOARD = storyboard([{"id": f"s{i}", "prompt": f"chaos {i}", "frames": 13, "seed": 10 + i}
                    for i in range(3)])


def busy_replica(director, film_id: str, pool: str, timeout: float = 30.0) -> str | None:
    """A replica of `pool` holding work of the film right now (None if none got busy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = director.assignments.remote().result()
        film = director.get_film.remote(film_id).result()
        if film.state.is_final:
            return None
        for worker, tasks in held.items():
            if worker.startswith(pool) and any(t.startswith(film_id) for t in tasks):
                return worker
        time.sleep(0.002)
    return None


def test_killing_an_expert_replica_never_changes_or_loses_frames(ray_app):
    import ray

    reference = inline_frames(BOARD)
    runs = faults = lost = mismatches = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        pool = rng.choice(["high", "low"])
        time.sleep(rng.uniform(0.0, 0.5))  # where in the film the kill lands
        info = ray_app.create_film.remote(BOARD).result()
        runs += 1
        victim = busy_replica(ray_app, info.film_id, pool)
        if victim is not None:
            replica = victim.split("-")[1]
            deployment = {"high": "PoolHigh", "low": "PoolLow"}[pool]
            ray.kill(ray.get_actor(f"SERVE_REPLICA::reelfarm#{deployment}#{replica}",
                                   namespace="serve"), no_restart=False)
            faults += 1
        done = wait_final(ray_app, info.film_id)
        if done.state.value != "SUCCEEDED":
            lost += 1
            continue
        got = list(ray_app.options(stream=True).stream_frames.remote(info.film_id))
        indices = [film_index for _, _, film_index, _ in got]
        frames = np.stack([np.asarray(Image.open(io.BytesIO(png))) for *_, png in got])
        if indices != list(range(len(reference))) or not np.array_equal(frames, reference):
            mismatches += 1
    print(f"\nchaos (ray): runs {runs}, faults injected {faults}, films lost {lost}, "
          f"mismatches {mismatches}")
    assert faults >= 8, "the kills must land while the films run"
    assert (lost, mismatches) == (0, 0)
