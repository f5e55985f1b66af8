"""Issue 33 on the toy model: the named character's data, the shape detector on the data's
own clips, and `reelfarm models train-lora` (a short run: the pair loads through the
storyboard's `loras:`, changes the render, and the same seed gives the same tensors)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from safetensors.torch import load_file

from bench.quality import lora_entries, render
from farm.cli import main
from farm.model.adapters import read_lora
from farm.toy import WEIGHTS, data, metrics
from farm.toy.lora_train import LORA_FILE, LoraConfig, train_lora

PIP = data.CHARACTERS["pip"]


def test_the_kind_detector_names_every_kind_of_the_datas_own_clips():
    rng = np.random.default_rng(5)
    scenes = [data.random_scene(rng) for _ in range(45)]
    found = [metrics.kind(data.render(s)) for s in scenes]
    assert found == [s.kind for s in scenes]
    assert metrics.kind(np.zeros((3, data.SIZE, data.SIZE, 3), np.uint8)) is None  # no shape


def test_shows_needs_the_characters_colour_and_kind():
    scene = data.character_scenes(0, "pip", 1, held_out=True)[0]
    assert metrics.shows(data.render(scene), PIP)
    for change in ({"colour": "red"}, {"kind": "triangle"}, {"kind": "square"}):
        assert not metrics.shows(data.render(dataclasses.replace(scene, **change)), PIP), change


def test_character_prompts_call_it_by_name_and_keep_the_held_out_ones_out():
    train = data.character_scenes(3, "pip", 50, held_out=False)
    held = data.character_scenes(3, "pip", 20, held_out=True)
    assert train == data.character_scenes(3, "pip", 50, held_out=False)  # seeded
    assert all(s.prompt.startswith("pip moves ") for s in train + held)
    assert {(s.colour, s.kind) for s in train + held} == {(PIP.colour, PIP.kind)}
    assert all(PIP.colour not in s.background for s in train + held)
    assert not {s.prompt for s in train} & {s.prompt for s in held}
    assert len({s.prompt for s in held}) == 20
    with pytest.raises(ValueError, match="only 30 distinct held-out prompts"):
        data.character_scenes(3, "pip", 31, held_out=True)


@pytest.mark.parametrize(("argv", "message"), [
    (["--concept", "bob"], "--concept must be one of pip, got 'bob'"),
    (["--concept", "pip", "--steps", "0"], "--steps must be >= 1, got 0"),
    (["--concept", "pip", "--seed", "-1"], "--seed must be >= 0, got -1"),
])
def test_train_lora_names_the_bad_flag(tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        main(["models", "train-lora", "toy", str(tmp_path / "out"), *argv])


def test_train_lora_refuses_a_base_that_is_not_the_toy(tmp_path):
    with pytest.raises(SystemExit, match="BASE 'tiny' is not the toy model"):
        main(["models", "train-lora", "tiny", str(tmp_path / "out"), "--concept", "pip"])


@pytest.mark.model
def test_train_lora_is_reproducible_and_loads_through_the_storyboard(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        assert main(["models", "train-lora", "toy", str(out), "--concept", "pip",
                     "--steps", "2", "--clips", "4", "--seed", "3"]) == 0
    for expert in ("high", "low"):
        a, b = (load_file(out / expert / LORA_FILE) for out in runs)
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
        lora = read_lora(str(runs[0] / expert / LORA_FILE))  # the farm's reader
        assert lora.layout == "diffusers" and lora.ranks == (8,) and len(lora.layers) == 40


@pytest.mark.model
def test_a_trained_pair_changes_the_render(tmp_path):
    # a large lr so two steps move the adapters (PEFT starts lora_B at zero: no change)
    train_lora(WEIGHTS, tmp_path / "pip",
               LoraConfig(steps=2, clips=4, lr=0.05, warmup=1), log=lambda _m: None)
    scene = [{"id": "s", "prompt": "pip moves left on a blue background", "frames": 17, "seed": 1}]
    bare = render("toy", scene, steps=2, shift=3.0)["s"]
    with_pair = render("toy", scene, steps=2, shift=3.0, loras=lora_entries(tmp_path / "pip"))["s"]
    assert np.abs(bare.astype(int) - with_pair.astype(int)).mean() > 1.0
