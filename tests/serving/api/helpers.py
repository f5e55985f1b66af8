"""Tokens, storyboards and waiting, shared by the API tests (no fixtures here)."""

from __future__ import annotations

import time

TOKENS = {"alice-token-0123456789abcdef": "alice", "bob-token-0123456789abcdef01": "bob",
          "quota-token-0123456789abcdef": "quota"}
TOKEN = {tenant: token for token, tenant in TOKENS.items()}
# Unfinished films per tenant on the test server, and frames not yet delivered summed
# over a tenant's unfinished films (RESOURCE_EXHAUSTED beyond).
MAX_PER_TENANT = 3
MAX_QUEUED_FRAMES = 1000
# What ResumeFilm, RetryFilm and RerenderFilm return: the film live again, QUEUED until
# the scheduler dispatches its next phase, then RUNNING.
LIVE = ("QUEUED", "RUNNING")


def tiny_board(scenes: int = 2, frames: int = 9, **film: object) -> dict:
    data = {"title": "api test", "fps": 16, "width": 32, "height": 32, "model": "tiny",
            "steps": 4, "scenes": [{"id": f"s{i}", "prompt": f"scene {i} of a test film",
                                    "frames": frames, "seed": i + 1} for i in range(scenes)]}
    data.update(film)
    return data


def wait_final(handle, timeout: float = 180.0):
    """The film once it has finished, polling GetFilm: unlike FilmHandle.wait(), a film
    that never finishes fails the test instead of hanging it."""
    from farm.client.common import is_final

    deadline = time.monotonic() + timeout
    while not is_final(film := handle.get()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{handle.name} still {film.state} after {timeout} s: {film}")
        time.sleep(0.2)
    return film
