"""Tokens and storyboards shared by the API tests (no fixtures here)."""

from __future__ import annotations

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
