"""Storyboard validation: every rule, with the error text checked."""

from __future__ import annotations

import pytest

from farm.spec.errors import SpecError
from farm.spec.storyboard import load_storyboard, parse_storyboard
from tests.helpers import board, make_film, scene


def errors_of(fn, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        fn(*args, **kwargs)
    return {e.path: e.message for e in info.value.errors}


def test_valid_storyboard_resolves_defaults():
    film = make_film([scene("s010", 17), {"id": "s020", "prompt": "p", "seconds": 2.0625}])
    assert [s.num_frames for s in film.scenes] == [17, 33]
    assert film.num_steps == 8 and film.shift == 12.0 and film.solver == "unipc"
    assert film.scenes[0].guidance == (4.0, 3.0)
    assert film.scenes[0].continuity == "single"


def test_frames_not_4k_plus_1_names_nearest_values():
    errs = errors_of(make_film, [scene("a", 18)])
    assert errs == {
        "scenes[0].frames": "18 is not 4k+1 (1, 5, 9, ... 81, ...); nearest valid: 17 or 21"}


def test_seconds_must_map_exactly_to_4k_plus_1_frames():
    errs = errors_of(make_film, [{"id": "a", "prompt": "p", "seconds": 2.0}])
    assert "scenes[0].seconds" in errs
    assert "2 s at 16 fps is 32 frames, not 4k+1" in errs["scenes[0].seconds"]
    assert "1.9375 s (31 frames)" not in errs["scenes[0].seconds"]
    assert "1.8125 s (29 frames) or 2.0625 s (33 frames)" in errs["scenes[0].seconds"]


def test_frames_and_seconds_exclusive():
    errs = errors_of(make_film, [{"id": "a", "prompt": "p", "frames": 17, "seconds": 1.0625}])
    assert errs["scenes[0].frames"] == "give exactly one of 'frames' or 'seconds'"
    errs = errors_of(make_film, [{"id": "a", "prompt": "p"}])
    assert errs["scenes[0].frames"] == "give exactly one of 'frames' or 'seconds'"


def test_size_multiple_depends_on_model_family():
    errs = errors_of(make_film, [scene()], width=72, height=40)
    assert errs["width"].startswith("72 is not a multiple of 16 (required by t2v-a14b")
    assert errs["width"].endswith("nearest valid: 64 or 80")
    assert errs["height"].endswith("nearest valid: 32 or 48")
    errs = errors_of(make_film, [scene()], family="ti2v-5b", width=48, height=64)
    assert errs == {"width": "48 is not a multiple of 32 (required by ti2v-5b: VAE x16 times "
                             "patch 2); nearest valid: 32 or 64"}


def test_every_error_is_listed_at_once():
    errs = errors_of(make_film, [scene("a", 18), scene("b", 10)], width=70)
    assert set(errs) == {"width", "scenes[0].frames", "scenes[1].frames"}


def test_unknown_fields_are_errors():
    errs = errors_of(parse_storyboard, board([scene(colour="red")], tempo=3))
    assert errs == {"tempo": "unknown field (not part of the storyboard format)",
                    "scenes[0].colour": "unknown field (not part of the storyboard format)"}


def test_scene_ids_pattern_and_uniqueness():
    errs = errors_of(parse_storyboard, board([scene("S 1")]))
    assert errs == {"scenes[0].id": "must contain only lowercase letters, digits, '_' and '-'"}
    errs = errors_of(parse_storyboard, board([scene("a"), scene("a")]))
    assert errs == {"scenes[1].id": "duplicate scene id 'a' (also scenes[0])"}


def test_missing_and_wrongly_typed_fields():
    data = board([scene()])
    del data["fps"]
    data["width"] = "wide"
    errs = errors_of(parse_storyboard, data)
    assert errs["fps"] == "required field is missing"
    assert "width" in errs and "integer" in errs["width"]
    errs = errors_of(parse_storyboard, board([]))
    assert "scenes" in errs


def test_guidance_keys_must_be_experts_of_the_family():
    errs = errors_of(make_film, [scene(guidance={"high": 4.0, "mid": 2.0})])
    assert errs == {"scenes[0].guidance": "unknown expert(s) mid for t2v-a14b; allowed: high, low"}
    film = make_film([scene(guidance=2.5)])
    assert film.scenes[0].guidance == (2.5, 2.5)
    film = make_film([scene(guidance={"low": 1.0})])
    assert film.scenes[0].guidance == (4.0, 1.0)


def test_chain_needs_an_image_conditioned_family():
    errs = errors_of(make_film, [scene(frames=161, continuity="chain")])
    assert errs == {"scenes[0].continuity": "'chain' needs a model that takes frames of the "
                    "previous clip; t2v-a14b does not. Families that support it: animate-14b, "
                    "i2v-a14b, s2v-14b, ti2v-5b, vace-a14b"}


def test_single_continuity_must_fit_one_window():
    errs = errors_of(make_film, [scene(frames=161, continuity="single")])
    assert ("161 frames are 41 latent frames, more than the window of 21"
            in errs["scenes[0].continuity"])
    assert make_film([scene(frames=161)]).scenes[0].continuity == "windows"


def test_window_limits():
    errs = errors_of(make_film, [scene(window=22)])
    assert errs["scenes[0].window"].startswith("22 latent frames exceeds the t2v-a14b limit of 21")
    errs = errors_of(make_film, [scene()], window=8, overlap=8)
    assert errs == {"overlap": "overlap 8 must be smaller than window 8"}


def test_steps_and_solver_ranges():
    errs = errors_of(parse_storyboard, board([scene()], steps=0, solver="ddim"))
    assert "steps" in errs and "greater than or equal to 1" in errs["steps"]
    assert errs["solver"].startswith("Input should be 'unipc' or 'euler'; got 'ddim'")


def test_files_yaml_json_and_garbage(tmp_path):
    p = tmp_path / "film.json"
    p.write_text('{"title": "t", "fps": 16, "width": 64, "height": 64, "scenes": '
                 '[{"id": "a", "prompt": "x", "frames": 5}]}')
    assert load_storyboard(p).scenes[0].frames == 5
    p = tmp_path / "bad.yaml"
    p.write_text("title: [unclosed")
    assert list(errors_of(load_storyboard, p)) == [""]
    p.write_text("")
    assert errors_of(load_storyboard, p) == {
        "": "a storyboard must be a mapping of fields, got an empty document"}
    p.write_bytes(b"\xff\xfe\x00junk")
    assert "cannot read" in errors_of(load_storyboard, p)[""]
