"""`loras:` and `draft:` in the storyboard (farm.spec.adapters): the rules, the merge of
film and scene adapters, the draft and its final, the job-store record, the API form."""

from __future__ import annotations

import json

import pytest

from farm.api import convert
from farm.media.library import sniff
from farm.spec.errors import SpecError
from farm.spec.film import final_film, phase_adapters
from farm.spec.serde import film_from_dict, film_to_dict
from farm.spec.storyboard import parse_storyboard
from tests.helpers import resolve_errors as errors_of
from tests.helpers import resolve_in as resolve


@pytest.fixture
def files(tmp_path):
    (tmp_path / "mira.safetensors").write_bytes(b"x")
    (tmp_path / "style").mkdir()
    (tmp_path / "style" / "pytorch_lora_weights.safetensors").write_bytes(b"x")
    for name in ("fast_high.safetensors", "fast_low.safetensors"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def board(**film):
    data = {"title": "t", "fps": 16, "width": 64, "height": 64,
            "scenes": [{"id": "a", "prompt": "x", "frames": 5},
                       {"id": "b", "prompt": "y", "frames": 5, "seed": 3}]}
    return data | film


def test_film_and_scene_adapters_merge_per_expert(files):
    data = board(loras=[{"name": "mira.safetensors", "weight": 0.8}])
    data["scenes"][1]["loras"] = [{"name": "style", "high": 1.0},
                                  {"name": "mira.safetensors", "weight": 0}]
    film = resolve(data, files)
    a, b = film.scenes
    assert [(x.name, x.weights) for x in a.adapters] == [("mira.safetensors", (0.8, 0.8))]
    # the scene's entry replaces the film's (weight 0: off), a folder is diffusers' file
    assert [(x.name, x.weights) for x in b.adapters] == [("style", (1.0, 0.0))]
    assert b.adapters[0].location == str(files / "style" / "pytorch_lora_weights.safetensors")
    assert phase_adapters(film, b, 0) == ((b.adapters[0].location, 1.0),)
    assert phase_adapters(film, b, 1) == ()  # low expert: none


def test_draft_renders_few_steps_and_its_final_restores_the_film(files):
    pair = [{"name": "fast_high.safetensors", "high": 1},
            {"name": "fast_low.safetensors", "low": 1}]
    data = board(steps=20, loras=[{"name": "mira.safetensors", "weight": 0.5}],
                 draft={"loras": pair, "steps": 4, "guidance": 1})
    data["scenes"][0]["guidance"] = {"high": 5.0, "low": 4.0}
    film = resolve(data, files)
    assert film.num_steps == 4 and [s.guidance for s in film.scenes] == [(1.0, 1.0)] * 2
    high = phase_adapters(film, film.scenes[0], 0)
    assert [loc.rsplit("/", 1)[1] for loc, _ in high] == ["mira.safetensors",
                                                          "fast_high.safetensors"]
    final = final_film(film)
    assert final.draft is None and final.num_steps == 20
    assert [s.guidance for s in final.scenes] == [(5.0, 4.0), (4.0, 3.0)]
    assert [s.seed for s in final.scenes] == [s.seed for s in film.scenes]
    assert [loc for loc, _ in phase_adapters(final, final.scenes[0], 0)] == [high[0][0]]
    assert final_film(final) is final
    # the job store's record keeps all of it
    assert film_from_dict(json.loads(json.dumps(film_to_dict(film)))) == film


def test_bad_entries_name_the_field_and_what_is_allowed(files):
    data = board(loras=[{"name": "missing.safetensors", "weight": 1},
                        {"name": "mira.safetensors", "weight": 1, "high": 1},
                        {"name": "style"}, {"name": "nofolder", "weight": 1}],
                 draft={"loras": [{"name": "fast_high.safetensors", "weight": 1}],
                        "steps": 4})
    data["scenes"][0]["loras"] = [{"name": "mira.safetensors", "weight": 1},
                                  {"name": "mira.safetensors", "weight": 2}]
    errs = errors_of(data, files)
    assert errs["loras[0].name"].startswith("no such file")
    assert "not both" in errs["loras[1]"]
    assert errs["loras[2].weight"].startswith("required")
    assert "pytorch_lora_weights.safetensors, as diffusers saves one" in errs["loras[3].name"]
    assert "listed twice" in errs["scenes[0].loras[1].name"]
    dense = errors_of(board(loras=[{"name": "mira.safetensors", "high": 1}]), files, "ti2v-5b")
    assert dense == {"loras[0].high": "ti2v-5b has no 'high' expert; its experts: dense "
                                      "(one expert: use `weight`)"}
    with pytest.raises(SpecError) as info:  # the schema: ranges, unknown fields
        parse_storyboard(board(loras=[{"name": "a", "weight": 9, "scale": 1}],
                               draft={"steps": 0}))
    paths = {e.path for e in info.value.errors}
    assert paths == {"loras[0].weight", "loras[0].scale", "draft.steps"}


def test_api_form_round_trips(files):
    data = board(loras=[{"name": "media/" + "a" * 64, "weight": 0.5}],
                 draft={"loras": [{"name": "media/" + "b" * 64, "high": 1}], "steps": 6})
    data["scenes"][1]["loras"] = [{"name": "media/" + "c" * 64, "high": 1.0, "low": 0.0}]
    dumped = parse_storyboard(data).model_dump(exclude_unset=True)
    film = convert.storyboard_to_film(dumped)
    assert film.draft.steps == 6 and not film.draft.HasField("guidance")
    back = convert.film_to_storyboard(film)
    assert back["loras"] == data["loras"] and back["draft"] == data["draft"]
    assert back["scenes"][1]["loras"] == data["scenes"][1]["loras"]


def test_a_safetensors_upload_is_an_adapter():
    import numpy as np
    from safetensors.numpy import save

    data = save({"transformer.blocks.0.attn1.to_q.lora_A.weight": np.zeros((2, 4), np.float32)})
    info = sniff(data, "0" * 64)
    assert (info.kind, info.mime_type) == ("adapter", "application/x-safetensors")
    assert convert.media_to_pb(info).kind == convert.pb.Media.KIND_ADAPTER
