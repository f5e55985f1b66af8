"""The toy data set: seeded clips, the documented grammar and vocabulary, held-out prompts."""

from __future__ import annotations

import re

import numpy as np

from farm.toy import data, metrics

GRAMMAR = re.compile(
    r"^an? (?P<colour>\w+) (?P<kind>\w+) moves (?P<direction>\w+)( (?P<speed>slowly|quickly))? "
    r"on a (?:(?P<bg>\w+) background|(?P<top>\w+) to (?P<bottom>\w+) gradient)$")


def test_same_seed_same_clip_other_seed_other_clip():
    p1, c1 = data.clip(3, 17)
    p2, c2 = data.clip(3, 17)
    assert p1 == p2 and np.array_equal(c1, c2)
    assert c1.shape == (data.FRAMES, data.SIZE, data.SIZE, 3) and c1.dtype == np.uint8
    p3, c3 = data.clip(4, 17)
    assert p3 != p1 or not np.array_equal(c1, c3)


def test_prompts_follow_the_grammar_and_use_only_the_vocabulary():
    vocab = set(data.vocabulary())
    for i in range(200):
        s = data.training_scene(0, i)
        m = GRAMMAR.match(s.prompt)
        assert m, s.prompt
        assert set(s.prompt.split()) <= vocab
        assert m["colour"] == s.colour and m["kind"] == s.kind and m["direction"] == s.direction
        assert s.colour not in s.background  # never a shape on a background of its own name
        assert not data.is_held_out(s.prompt)


def test_held_out_prompts_are_distinct_and_never_in_training():
    held = data.held_out_scenes(0, 12)
    assert len({s.prompt for s in held}) == 12
    assert all(data.is_held_out(s.prompt) for s in held)
    assert held == data.held_out_scenes(0, 12)


def test_the_clip_shows_what_the_prompt_says():
    for s in data.held_out_scenes(1, 20):
        frames = data.render(s)
        assert metrics.colour(frames) == s.colour
        assert metrics.direction(frames) == s.direction
        v = np.abs(metrics.velocity(frames)).max()
        assert abs(v - data.SPEEDS[s.speed]) < 0.2, (s.prompt, v)


def test_shapes_stay_inside_the_frame():
    for i in range(100):
        s = data.training_scene(2, i)
        frames = data.render(s)
        mask = metrics.foreground(frames)
        assert mask.sum(axis=(1, 2)).min() > 0.5 * mask.sum(axis=(1, 2)).max(), s.prompt
        c = metrics.centroids(frames)  # (a triangle's apex may touch the border, its body not)
        assert (c > s.radius).all() and (c < data.SIZE - s.radius).all(), s.prompt
