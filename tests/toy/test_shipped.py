"""The toy model as shipped (farm/toy/weights, model `toy`): it renders what held-out
prompts say and its windows scenes have no seams (issue 16's targets, on fewer prompts
than bench/quality.py so CI stays short; the bench's full table is in README)."""

from __future__ import annotations

import pytest

from bench.quality import render, seam_rows, seam_scenes
from farm.model.loader import resolve_model
from farm.toy import WEIGHTS, data, metrics

pytestmark = pytest.mark.model
PROMPTS = 8


def test_the_toy_model_ships_in_the_package_within_20_mb():
    toy = resolve_model("toy")
    # a shipped folder like any other: its family is read from its configs
    assert toy.path == WEIGHTS and toy.family == "t2v-a14b"
    size = sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file())
    assert size <= 20 * 2**20, size
    assert not [p.name for p in WEIGHTS.rglob("*.pt")]  # training states are not shipped


def test_held_out_prompts_get_their_colour_and_direction():
    held = {f"q{i}": s for i, s in enumerate(data.held_out_scenes(0, PROMPTS))}
    scenes = [{"id": k, "prompt": s.prompt, "frames": data.FRAMES, "seed": 7 + i}
              for i, (k, s) in enumerate(held.items())]
    clips = render("toy", scenes, steps=20, shift=3.0)
    colour = sum(metrics.colour(clips[k]) == s.colour for k, s in held.items())
    along = sum(metrics.moves_along(clips[k], s.direction) for k, s in held.items())
    assert colour >= PROMPTS - 1 and along >= PROMPTS - 1, (colour, along)


def test_a_windows_scene_has_no_seams_where_independent_segments_do():
    scenes, truth = seam_scenes(0, 1)
    rows = seam_rows({**render("toy", scenes, steps=20, shift=3.0), **truth}, 1)
    ratio, jump = rows["windows"]
    assert ratio <= 1.1 and jump <= 2.0, rows
    assert rows["independent"][0] > 1.5, rows  # the metric sees a seam where there is one
