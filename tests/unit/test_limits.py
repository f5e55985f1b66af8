"""The farm's limits: each one, with its message; the memory estimate refuses films that
would not fit a worker, naming the estimate."""

from __future__ import annotations

from farm.spec.limits import Footprint, Limits, check_limits, check_memory, window_memory_bytes
from tests.helpers import make_film, scene

A14B = Footprint(weight_bytes=28_600_000_000, dim=5120, ffn_dim=13824)


def messages(errors) -> dict[str, str]:
    return {e.path: e.message for e in errors}


def test_a_film_inside_the_limits_passes():
    assert check_limits(make_film([scene("a", 81)]), Limits()) == []


def test_each_limit_names_the_field_value_and_limit():
    film = make_film([scene("a", 33, prompt="x" * 50), scene("b", 17)], steps=9, width=128)
    limits = Limits(max_scenes=1, max_frames_per_scene=17, max_frames_per_film=40, max_steps=8,
                    max_prompt_chars=20, max_side={"t2v-a14b": 96})
    got = messages(check_limits(film, limits))
    assert got["steps"] == "9; the limit is 8"
    assert got["width"] == "128 pixels; t2v-a14b renders at most 96"
    assert got["scenes[0].frames"] == "33; the limit per scene is 17"
    assert got["scenes[0].prompt"] == "50 characters; the limit is 20"
    assert "scenes" in got  # scenes and frames per film share the field


def test_control_characters_in_prompts_are_refused():
    film = make_film([scene("a", 9, prompt="a fox\x00 runs\x1b[31m", negative_prompt="ok\n\tfine")])
    got = messages(check_limits(film, Limits()))
    assert got == {"scenes[0].prompt": "control characters are not allowed: U+0000, U+001B"}


def test_memory_estimate_refuses_what_would_not_fit():
    small = make_film([scene("a", 81)], width=1280, height=720)
    big = make_film([scene("a", 81)], width=1920, height=1920)
    assert 30e9 < window_memory_bytes(small, A14B) < 45e9
    assert check_memory(small, A14B, Limits(worker_memory_gb=80)) == []
    (err,) = check_memory(big, A14B, Limits(worker_memory_gb=40))
    assert err.path == "width" and "needs about 55.9 GB per worker" in err.message
    assert "workers have 40 GB" in err.message
    # shorter windows fit: the estimate follows the window, not the scene
    short = make_film([scene("a", 81, window=5)], width=1920, height=1920)
    assert check_memory(short, A14B, Limits(worker_memory_gb=40)) == []
