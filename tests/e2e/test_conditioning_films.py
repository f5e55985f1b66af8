"""Films with media inputs, end to end through `reelfarm render` (tiny models: the pictures
are noise, but shapes, frame counts, alignment and plumbing are real): each conditioning
family renders a 2-scene film with its inputs, a reference shared by id reaches both
scenes, scene audio comes out of the mp4 aligned to the frames, and bad media is refused
by `reelfarm validate` with the field and the file named.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import torch
import yaml

from farm.cli import main
from farm.media.movie import probe_audio
from farm.media.writers import probe_video
from farm.model.worker import TorchWorker
from tests.media_files import write_corrupt, write_image, write_tone, write_video

pytestmark = pytest.mark.model
W = H = 32
FPS = 16


@pytest.fixture
def media(tmp_path):
    write_image(tmp_path / "hero.png", 24, 40, seed=1)
    write_image(tmp_path / "prop.png", 40, 24, seed=2)
    write_image(tmp_path / "start.png", W, H, seed=3)
    write_image(tmp_path / "end.png", 48, 48, seed=4)
    write_video(tmp_path / "pose.mp4", 40, 24, 48, 40, seed=5)  # resampled to 16 fps
    write_video(tmp_path / "face.webm", 26, FPS, 24, 24, seed=6)
    write_video(tmp_path / "depth.webm", 17, FPS, W, H, seed=7)
    write_tone(tmp_path / "voice.flac", 1.2)
    return tmp_path


def render(tmp_path, monkeypatch, family: str, scenes: list[dict], **film) -> dict:
    """Render; each denoise's scene, latent window and conditioning, and the outputs."""
    seen: dict[str, list] = defaultdict(list)
    steps = TorchWorker.denoise_steps

    def recording(self, order, prompt, state, condition):
        if state is None:  # the first phase of each segment (a scene's first: its inputs)
            seen[order.scene_id].append((order.window, getattr(condition, "first", condition)))
        return steps(self, order, prompt, state, condition)

    monkeypatch.setattr(TorchWorker, "denoise_steps", recording)
    story = {"title": family, "fps": FPS, "width": W, "height": H, "model": f"tiny-{family}",
             "steps": 2, "scenes": scenes, **film}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    assert main(["render", str(tmp_path / "film.yaml"), "-o", str(tmp_path / "film.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    for s in scenes:
        assert len(list((tmp_path / "frames" / s["id"]).glob("*.png"))) == s["frames"]
    assert probe_video(tmp_path / "film.mp4")["frames"] == sum(s["frames"] for s in scenes)
    return seen


def scene(sid: str, frames: int, **kw) -> dict:
    return {"id": sid, "prompt": f"shot {sid}", "frames": frames, "seed": 1, **kw}


def test_vace_film_shares_a_reference_by_id_across_scenes(media, monkeypatch):
    seen = render(media, monkeypatch, "vace-a14b", [
        scene("a", 9, references=["hero"], control_video="depth.webm", mask="start.png"),
        scene("b", 17, references=["prop.png", "hero"], image="start.png", last_image="end.png",
              continuity="chain", window=3, carry_frames=5)],
        references=[{"id": "hero", "image": "hero.png"}])
    a, b = seen["a"], seen["b"]
    assert [w.size for w, _ in a] == [3] and [(w.start, w.stop) for w, _ in b] == [
        (0, 3), (1, 4), (2, 5)]
    assert all(c.kind == "control" for _, c in a + b)
    assert [c.prefix for _, c in a + b] == [1, 2, 2, 2]
    # diffusers puts the last reference first: hero is prefix frame 0 in every clip
    hero = [c.kwargs["control_hidden_states"][:, :16, 0] for _, c in a + b]
    assert all(torch.equal(hero[0], h) for h in hero[1:])
    prop = b[0][1].kwargs["control_hidden_states"][:, :16, 1]
    assert not torch.allclose(prop, hero[0])


def test_animate_film_carries_the_character_into_every_clip(media, monkeypatch):
    seen = render(media, monkeypatch, "animate-14b", [
        scene("a", 9, references=["hero.png"], pose_video="pose.mp4"),
        scene("b", 17, references=["hero.png"], pose_video="pose.mp4", face_video="face.webm",
              continuity="chain", window=3)])
    clips = seen["a"] + seen["b"]
    assert [(w.start, w.stop) for w, _ in clips] == [(0, 3), (0, 3), (2, 5)]
    reference = [c.latents[:, :, 0] for _, c in clips]  # the character frame in front
    assert all(torch.equal(reference[0], r) for r in reference[1:])
    assert all(c.prefix == 1 and c.kwargs["pose_hidden_states"].shape[2] == 3 for _, c in clips)
    # scene a has no face video: the face input is blank (-1), as diffusers' unconditional one
    assert clips[0][1].kwargs["face_pixel_values"].eq(-1).all()
    assert not clips[1][1].kwargs["face_pixel_values"].eq(-1).all()


@pytest.mark.parametrize("family", ["i2v-a14b", "ti2v-5b"])
def test_first_frame_families_render_two_scenes(media, monkeypatch, family):
    ends = {"last_image": "end.png"} if family == "i2v-a14b" else {}
    second = {"image": "start.png"} if family == "i2v-a14b" else {}
    seen = render(media, monkeypatch, family, [
        scene("a", 9, image="start.png", **ends),
        scene("b", 17, continuity="chain", window=3, **second, **ends)])
    assert seen["a"][0][1] is not None
    first_b = seen["b"][0][1]
    assert (first_b is None) == (family == "ti2v-5b")  # TI2V: text-only first clip
    assert seen["b"][1][1] is not None  # the chained clip starts from the decoded frame


def test_scene_audio_is_muxed_with_the_right_duration(media, monkeypatch):
    render(media, monkeypatch, "t2v-a14b", [scene("a", 9), scene("b", 17, audio="voice.flac")])
    audio = probe_audio(media / "film.mp4")
    assert (audio["sample_rate"], audio["channels"], audio["codec"]) == (48000, 2, "aac")
    samples = audio["samples"]
    expected = (9 + 17) * 48000 // FPS
    assert abs(samples.shape[1] - expected) <= 2048  # AAC frames of 1024 samples
    silent, voiced = samples[:, :9 * 3000 - 1024], samples[:, 9 * 3000 + 1024:expected - 1024]
    assert np.abs(silent).max() < 0.01 and np.sqrt((voiced ** 2).mean()) > 0.1
    assert probe_video(media / "film.mp4")["frames"] == 26  # the picture is untouched


def test_validate_names_bad_media_and_the_families_that_take_an_input(media, capsys):
    write_corrupt(media / "bad.mp4", media / "pose.mp4")
    write_video(media / "short.webm", 4, FPS, W, H)

    def validate(*scenes: dict) -> str:
        story = {"title": "t", "fps": FPS, "width": W, "height": H, "model": "tiny-animate-14b",
                 "scenes": list(scenes)}
        (media / "f.yaml").write_text(yaml.safe_dump(story))
        assert main(["validate", str(media / "f.yaml")]) == 2
        return capsys.readouterr().err

    err = validate(scene("a", 9, references=["hero.png"], pose_video="bad.mp4"),
                   scene("b", 9, references=["hero.png"], pose_video="short.webm"))
    assert "scenes[0].pose_video" in err and "bad.mp4: cannot" in err
    assert "scenes[1].pose_video" in err and "short.webm: is 0.250 s" in err
    err = validate(scene("c", 9, references=["hero.png"], pose_video="pose.mp4",
                         control_video="depth.webm"))
    assert ("scenes[0].control_video: animate-14b cannot use `control_video`; families that "
            "can: vace-a14b") in err
