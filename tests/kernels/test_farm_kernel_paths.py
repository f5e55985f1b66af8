"""The farm runs the kernels where Triton runs (here: CPU under TRITON_INTERPRET=1), inside
its own hot paths, and renders the same film as with their torch references: frames become
uint8 through frame_pack, and windows blend + step through blend_step."""

from __future__ import annotations

import numpy as np
import pytest

from farm.local import LocalFarm
from tests.helpers import make_film, scene
from tests.kernels.conftest import needs_triton

pytestmark = [pytest.mark.model, needs_triton]
# one scene of 7 latent frames in two overlapping windows, 4 steps: 25 frames
FILM = make_film([scene("s", 25, seed=5, continuity="windows", window=5, overlap=2)],
                 steps=4, width=32, height=32)


def render() -> np.ndarray:
    farm = LocalFarm("tiny")
    _, stream = farm.submit(FILM)
    farm.run()
    return np.stack([f.frame for f in stream])


def launches(monkeypatch, module: str) -> list[int]:
    """Count the launches of reelfarm_kernels.jit.<module> (its kernel, not the reference)."""
    import importlib

    jit = importlib.import_module(f"reelfarm_kernels.jit.{module}")
    seen: list[int] = []
    launch = jit.launch
    monkeypatch.setattr(jit, "launch", lambda *a, **k: seen.append(1) or launch(*a, **k))
    return seen


def test_a_film_through_the_kernels_equals_the_film_through_the_references(monkeypatch):
    packs, steps = launches(monkeypatch, "frame_pack"), launches(monkeypatch, "blend_step")
    kernels = render()
    assert len(packs) == 7  # one per decoded latent frame
    assert len(steps) == 2 * 4  # two windows, four steps each
    monkeypatch.delenv("TRITON_INTERPRET")  # CPU without the interpreter: the references
    references = render()
    assert (len(packs), len(steps)) == (7, 8)  # no further launches
    assert kernels.shape == (25, 32, 32, 3) and np.array_equal(kernels, references)
