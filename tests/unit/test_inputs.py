"""Scene media inputs in the storyboard: which family takes which, references by id,
chain carry, and every error by field path naming what is allowed."""

from __future__ import annotations

import pytest

from farm.plan.film import plan_scene
from farm.plan.segments import Window, plan_chain, shared_latents
from farm.spec.errors import SpecError
from farm.spec.film import resolve_film
from farm.spec.profiles import PROFILES
from farm.spec.storyboard import parse_storyboard


def board(*scenes: dict, **film) -> dict:
    return {"title": "t", "fps": 16, "width": 64, "height": 64, "scenes": list(scenes), **film}


def errors(data: dict, family: str, tmp_path) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        resolve_film(parse_storyboard(data), PROFILES[family], base_dir=tmp_path)
    return {e.path: e.message for e in err.value.errors}


@pytest.fixture
def files(tmp_path):
    for name in ("a.png", "b.png", "c.png", "pose.mp4", "depth.webm", "voice.flac"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_an_input_a_family_cannot_use_names_the_families_that_can(files):
    got = errors(board({"id": "s", "prompt": "p", "frames": 9, "pose_video": "pose.mp4",
                        "control_video": "depth.webm", "last_image": "a.png"}), "ti2v-5b", files)
    assert got == {
        "scenes[0].pose_video":
            "ti2v-5b cannot use `pose_video`; families that can: animate-14b, s2v-14b",
        "scenes[0].control_video":
            "ti2v-5b cannot use `control_video`; families that can: vace-a14b",
        "scenes[0].last_image":
            "ti2v-5b cannot use `last_image`; families that can: i2v-a14b, vace-a14b"}


def test_every_family_takes_audio_and_required_inputs_are_named(files):
    scene = {"id": "s", "prompt": "p", "frames": 9, "audio": "voice.flac"}
    film = resolve_film(parse_storyboard(board(scene)), PROFILES["t2v-a14b"], base_dir=files)
    assert film.scenes[0].inputs.audio == str(files / "voice.flac")
    assert not film.scenes[0].has_inputs  # nothing for the model: no encode task
    assert errors(board(scene), "animate-14b", files) == {
        "scenes[0].pose_video": "animate-14b needs `pose_video` in every scene",
        "scenes[0].references": "animate-14b needs `references` in every scene"}


def test_references_by_id_character_or_path_each_once(files):
    data = board({"id": "s", "prompt": "p", "frames": 9,
                  "references": ["hero", "mira", "c.png", "hero"]},
                 references=[{"id": "hero", "image": "a.png"}],
                 characters=[{"id": "mira", "description": "d", "references": ["b.png", "a.png"]}])
    film = resolve_film(parse_storyboard(data), PROFILES["vace-a14b"], base_dir=files)
    assert film.scenes[0].inputs.references == tuple(str(files / n)
                                                     for n in ("a.png", "b.png", "c.png"))
    assert film.scenes[0].has_inputs
    assert PROFILES["vace-a14b"].prefix_frames(3) == 3  # a latent frame per reference
    assert PROFILES["animate-14b"].prefix_frames(1) == 1


def test_reference_id_errors(files):
    with pytest.raises(SpecError) as err:
        parse_storyboard(board({"id": "s", "prompt": "p", "frames": 9, "references": ["ghost"]},
                               references=[{"id": "hero", "image": "a.png"},
                                           {"id": "hero", "image": "b.png"}]))
    got = {e.path: e.message for e in err.value.errors}
    assert got["references[1].id"] == "duplicate id 'hero' (also references[0])"
    assert got["scenes[0].references[0]"].startswith("'ghost' is not the id of a reference or "
                                                     "character; known: hero")


def test_animate_takes_one_character_and_carries_1_or_5_frames(files):
    scene = {"id": "s", "prompt": "p", "frames": 9, "references": ["a.png", "b.png"],
             "pose_video": "pose.mp4", "carry_frames": 3, "mask": "a.png"}
    assert errors(board(scene), "animate-14b", files) == {
        "scenes[0].references": "animate-14b takes exactly 1 reference image(s), got 2",
        "scenes[0].carry_frames": "animate-14b continues a clip from 1 or 5 frame(s) of the "
                                  "previous one; got 3",
        "scenes[0].mask": "animate-14b cannot use `mask`; families that can: vace-a14b"}


def test_media_scenes_are_chains_not_windows(files):
    scene = {"id": "s", "prompt": "p", "frames": 161, "references": ["a.png"],
             "pose_video": "pose.mp4"}
    film = resolve_film(parse_storyboard(board(scene)), PROFILES["animate-14b"], base_dir=files)
    assert film.scenes[0].continuity == "chain"  # longer than a clip: sequential clips
    got = errors(board({**scene, "continuity": "windows"}), "animate-14b", files)
    assert "parallel windows cannot share clip conditioning" in got["scenes[0].continuity"]
    vace = errors(board({"id": "s", "prompt": "p", "frames": 161, "continuity": "windows"}),
                  "vace-a14b", files)  # VACE is conditioned even without inputs
    assert "use 'chain'" in vace["scenes[0].continuity"]


def test_mask_needs_the_control_video_it_masks(files):
    got = errors(board({"id": "s", "prompt": "p", "frames": 9, "mask": "a.png"}), "vace-a14b",
                 files)
    assert "give control_video too" in got["scenes[0].mask"]


def test_missing_files_are_named_and_urls_are_kept(files):
    data = board({"id": "s", "prompt": "p", "frames": 9, "image": "nope.png",
                  "last_image": "s3://bucket/end.png"})
    assert errors(data, "i2v-a14b", files) == {
        "scenes[0].image": f"no such file: {files / 'nope.png'}"}
    ok = board({"id": "s", "prompt": "p", "frames": 9, "image": "a.png", "last_image": "s3://b/e.png"})
    film = resolve_film(parse_storyboard(ok), PROFILES["i2v-a14b"], base_dir=files)
    assert film.scenes[0].inputs.last_image == "s3://b/e.png"


@pytest.mark.parametrize("carry, windows", [(1, [(0, 20), (19, 39)]), (5, [(0, 20), (18, 38)])])
def test_animate_chain_clips_match_diffusers_segments(files, carry, windows):
    """77-frame clips overlapping by the carried frames: 76 / 72 new frames each."""
    frames = 77 + (77 - carry)
    scene = {"id": "s", "prompt": "p", "frames": frames, "references": ["a.png"],
             "pose_video": "pose.mp4", "carry_frames": carry}
    film = resolve_film(parse_storyboard(board(scene, fps=30)), PROFILES["animate-14b"],
                        base_dir=files)
    units = plan_scene(film.scenes[0]).units
    assert [(u.segments[0].window.start, u.segments[0].window.stop) for u in units] == windows
    assert [(u.frame_start, u.frame_stop, u.drop_frames) for u in units] == [
        (0, 77, 0), (77, frames, carry)]
    assert shared_latents(carry) == (1 if carry == 1 else 2)
    assert plan_chain(5, 3, 2) == (Window(0, 3), Window(1, 4), Window(2, 5))
