"""bench/quality.py's measures on synthetic frames: a known seam is detected, a smooth pan
is not; colour, direction and jitter of known motion."""

from __future__ import annotations

import dataclasses

import numpy as np

from farm.toy import data, metrics


def pan(frames: int = 41, start=(12.0, 30.0), direction: str = "right") -> np.ndarray:
    s = dataclasses.replace(data.Scene("red", "circle", direction, "slowly", ("blue",)),
                            start=start)
    return data.render(s, frames)


def test_a_smooth_pan_has_no_seam():
    ratio, jump = metrics.seams(pan(), [9, 17, 21, 29])
    assert 0.8 < ratio < 1.1 and jump < 1.5


def test_a_cut_in_the_middle_is_a_seam():
    a, b = pan(start=(12.0, 30.0)), pan(start=(30.0, 20.0))
    frames = np.concatenate([a[:20], b[20:]])
    ratio, jump = metrics.seams(frames, [20])
    assert ratio > 3 and jump > 10


def test_colour_direction_and_jitter_of_known_motion():
    for d in data.DIRECTIONS:
        frames = pan(17, (32.0, 32.0), d)
        assert metrics.colour(frames) == "red"
        assert metrics.direction(frames) == d and metrics.moves_along(frames, d)
        assert metrics.jitter(frames) < 0.3
    shaky = pan(17, (32.0, 32.0))
    shaky[1::2] = np.roll(shaky[1::2], 3, axis=1)  # every other frame 3 px down
    assert metrics.jitter(shaky) > 2


def test_an_empty_clip_has_no_colour_or_direction():
    frames = np.full((17, 64, 64, 3), 40, dtype=np.uint8)
    assert metrics.colour(frames) is None and metrics.direction(frames) is None
    assert np.isnan(metrics.centroids(frames)).all()


def test_the_bench_guidance_flag_takes_one_or_two_numbers_and_names_itself_when_bad():
    import argparse

    import pytest

    from bench.quality import guidance_arg

    assert guidance_arg("5") == {"high": 5.0, "low": 5.0}
    assert guidance_arg("6,4") == {"high": 6.0, "low": 4.0}
    for bad in ("", "a", "1,2,3", "-1", "4,x"):
        with pytest.raises(argparse.ArgumentTypeError, match="--guidance takes G or HIGH,LOW"):
            guidance_arg(bad)
