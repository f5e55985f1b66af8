"""Speech-to-video (s2v-14b) in the storyboard and the plan: image and audio required,
one character only, sizes of 64, clips of 20 latents that do not overlap, one expert."""

from __future__ import annotations

import pytest

from farm.plan.film import plan_film
from farm.plan.segments import Window
from farm.spec.errors import SpecError
from farm.spec.film import resolve_film
from farm.spec.profiles import PROFILES
from farm.spec.storyboard import parse_storyboard

S2V = PROFILES["s2v-14b"]


def board(*scenes: dict, **film) -> dict:
    return {"title": "t", "fps": 16, "width": 64, "height": 64, "scenes": list(scenes), **film}


def talk(frames: int = 157, **kw) -> dict:
    return {"id": "s", "prompt": "she sings", "frames": frames, "image": "face.png",
            "audio": "song.flac", **kw}


def resolve(data: dict, tmp_path):
    return resolve_film(parse_storyboard(data), S2V, base_dir=tmp_path)


def errors(data: dict, tmp_path) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        resolve(data, tmp_path)
    return {e.path: e.message for e in err.value.errors}


@pytest.fixture
def files(tmp_path):
    for name in ("face.png", "other.png", "song.flac", "pose.mp4"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_official_defaults():
    assert (S2V.experts, S2V.steps, S2V.shift, S2V.guidance, S2V.fps) == (
        ("dense",), 40, 3.0, (4.5,), 16)
    assert (S2V.max_window, S2V.motion_frames, S2V.carry, S2V.size_multiple) == (20, 73, (73,), 64)


def test_empty_negative_prompt_is_the_official_one(files):
    scenes = resolve(board(talk(), {**talk(), "id": "t", "negative_prompt": "blurry"}),
                     files).scenes
    assert (scenes[0].negative_prompt.startswith("画面模糊，最差质量")
            and scenes[0].negative_prompt.endswith("倒着走"))
    assert scenes[1].negative_prompt == "blurry"


@pytest.mark.parametrize("missing", ["audio", "image"])
def test_s2v_needs_audio_and_image_naming_the_field(files, missing):
    scene = talk()
    del scene[missing]
    assert errors(board(scene), files) == {
        f"scenes[0].{missing}": f"s2v-14b needs `{missing}` in every scene"}


def test_several_characters_are_refused_naming_the_allowed_inputs(files):
    got = errors(board(talk(references=["other.png"], mask="other.png")), files)
    assert set(got) == {"scenes[0].references", "scenes[0].mask"}
    for message in got.values():
        assert "several characters (per-character audio, reference crops or masks)" in message
        assert message.endswith("allowed inputs: image, audio, pose_video")
    assert resolve(board(talk(pose_video="pose.mp4")), files).scenes[0].inputs.pose_video


def test_sizes_and_clip_length(files):
    got = errors(board(talk(window=10), width=96), files)
    assert got["width"].startswith("96 is not a multiple of 64")
    assert got["width"].endswith("nearest valid: 64 or 128")
    assert got["scenes[0].window"].endswith("allowed: 20")
    assert errors(board(talk(carry_frames=5)), files) == {"scenes[0].carry_frames": (
        "s2v-14b continues a clip from 73 frame(s) of the previous one; got 5")}


def test_long_scene_is_clips_that_do_not_overlap(files):
    """185 frames = 47 latents: clips [0, 20) [20, 40) [40, 47); the first yields 4 * 20 - 3
    frames (decoded behind the reference latent, 1 + 3 dropped), later ones 4 per latent
    (decoded behind the 19 motion latents: 73 frames dropped)."""
    film = resolve(board(talk(185)), files)
    scene = film.scenes[0]
    assert (scene.continuity, scene.history, scene.carry) == ("chain", True, 73)
    plan = plan_film(film)
    units = plan.scenes[0].units
    assert [u.segments[0].window for u in units] == [Window(0, 20), Window(20, 40), Window(40, 47)]
    assert [(u.frame_start, u.frame_stop) for u in units] == [(0, 77), (77, 157), (157, 185)]
    assert [u.drop_frames for u in units] == [4, 73, 73]
    assert [u.after for u in units] == [None, "s/u0", "s/u1"]
    assert not plan.scenes[0].continuous_decode


def test_one_clip_scene_is_decoded_behind_the_reference(files):
    film = resolve(board(talk(77)), files)
    assert film.scenes[0].continuity == "single"
    (unit,) = plan_film(film).scenes[0].units
    assert (unit.segments[0].window, unit.frame_start, unit.frame_stop, unit.drop_frames) == (
        Window(0, 20), 0, 77, 4)


def test_one_expert_family_one_phase_per_clip(files):
    plan = plan_film(resolve(board(talk(157)), files))
    assert [(p.expert, p.start, p.stop) for p in plan.phases] == [(0, 0, 40)]
    assert len(plan.units) == 2 and all(len(u.segments) == 1 for u in plan.units)
    assert plan.film.scenes[0].guidance == (4.5,)
