"""Continuity across cuts for the chain-continuation families (farm.spec.continuity): a
scene with `start_from: a` begins as the next clip of a chain after scene a's last clip,
with its own character.

    S2V      film  a ──last 73 frames (fewer: zeros in front)──> b's first clip's motion
             hand  the official sampling loop (as tests/model/test_s2v.py) over a then b:
                   b's clip is a's next clip, with b's reference, audio, prompt and seed
    Animate  film  a ──last 5 decoded frames, known (mask 1)──> b's first clip
             hand  the conditioning a chain builds for its next clip from those frames
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.media_files import write_image, write_tone, write_video
from tests.model.test_start_from import STEPS, H, W, render

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("one_thread")]


# ------------------------------------------------------------------ S2V


def s2v_by_hand(folder: str, scenes: list[dict]) -> list[np.ndarray]:
    """Each scene one clip of the official loop (wan/speech2video.py `generate`, written
    out with our modules as tests/model/test_s2v.py does), the 73-frame history rolling
    over from one scene to the next: the first without motion, decoded behind its
    reference latent (1 + 3 frames dropped); the next behind the motion latents of the
    history (zeros in front of a short one), its 3 lead-in frames dropped."""
    from farm.media.audio import decode_audio
    from farm.media.decode import decode_image
    from farm.model.condition import encode_latents
    from farm.model.loader import ModelLoader, resolve_model
    from farm.model.s2v.audio import frame_buckets
    from farm.model.s2v.condition import scene_features
    from farm.model.text import encode_prompts
    from farm.spec.profiles import S2V_NEGATIVE

    loader = ModelLoader(resolve_model(folder))
    model, vae = loader.expert("dense"), loader.vae()
    tok, enc = loader.text()
    extractor, wav2vec = loader.audio_encoder()
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    history, out = None, []
    for s in scenes:
        embeds = encode_prompts(tok, enc, s["prompt"], S2V_NEGATIVE, 512, True)
        samples = decode_audio(s["audio"], 16000).mean(axis=0)
        feats = scene_features(vae, extractor, wav2vec, decode_image(s["image"]), samples,
                               16, H, W)
        n = (s["frames"] + 3) // 4  # latents of the clip
        ref, audio = feats["ref"], frame_buckets(feats["audio"], 16, 0, 4 * n)
        g = torch.Generator("cpu").manual_seed(s["seed"])
        latents = torch.randn(16, n, H // 8, W // 8, generator=g)[None]
        motion = (ref.new_zeros(1, 16, 0, H // 8, W // 8) if history is None
                  else encode_latents(vae, history))
        sched = loader.scheduler("unipc", 3.0)
        sched.set_timesteps(STEPS)
        for t in sched.timesteps:
            with torch.no_grad():
                c = model(latents, t[None], embeds.prompt, ref, motion, audio, None)[0]
                u = model(latents, t[None], embeds.negative, ref, motion, 0 * audio, None)[0]
            latents = sched.step(u + 4.5 * (c - u), t, latents, return_dict=False)[0]
        lead = ref if history is None else motion
        with torch.no_grad():
            z = torch.cat([lead, latents], dim=2)
            image = vae.decode(z * std + mean, return_dict=False)[0].clamp(-1, 1)
        image = image[:, :, -4 * n:][:, :, 3:]  # the clip's frames, after the lead-in
        before = torch.zeros(1, 3, 73, H, W) if history is None else history
        history = torch.cat([before, image], dim=2)[:, :, -73:]
        video = image[0].permute(1, 2, 3, 0)
        out.append(((video / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    return out


def test_s2v_scene_starts_from_the_motion_history_of_the_source(tiny_dirs, tmp_path):
    """b (start_from a) = the official loop's next clip after a (a is 9 frames: the
    history is zeros in front of them), with b's own reference photo and audio; and not
    b rendered on its own."""
    folder = tiny_dirs("s2v-14b")
    for name, (w, h, seed) in {"ref_a": (96, 80, 1), "ref_b": (80, 96, 2)}.items():
        write_image(tmp_path / f"{name}.png", w, h, seed=seed)
    write_tone(tmp_path / "a.flac", 2.0, frequency=220.0)
    write_tone(tmp_path / "b.flac", 2.0, frequency=330.0)
    a = {"id": "a", "prompt": "a woman sings", "frames": 9, "seed": 3,
         "image": str(tmp_path / "ref_a.png"), "audio": str(tmp_path / "a.flac")}
    b = {"id": "b", "prompt": "a man answers", "frames": 13, "seed": 7, "start_from": "a",
         "image": str(tmp_path / "ref_b.png"), "audio": str(tmp_path / "b.flac")}
    film = render(tmp_path, "film", folder, [a, b])
    hand_a, hand_b = s2v_by_hand(folder, [a, b])
    assert film["a"].shape == hand_a.shape and film["b"].shape == hand_b.shape == (13, H, W, 3)
    for got, want in ((film["a"], hand_a), (film["b"], hand_b)):
        assert np.abs(got.astype(np.int16) - want.astype(np.int16)).max() <= 1
    alone = render(tmp_path, "alone", folder, [{k: v for k, v in b.items()
                                                 if k != "start_from"}])["b"]
    # (random tiny weights: the motion tokens move the frames a little, but by more than
    # the by-hand comparison allows, so it could not pass without the history)
    assert np.abs(alone.astype(np.int16) - film["b"].astype(np.int16)).max() > 1


# ------------------------------------------------------------------ Animate


def test_animate_scene_starts_from_the_source_last_frames_as_a_chain_clip(
        tiny_dirs, tmp_path, monkeypatch):
    """b's first clip is conditioned exactly as a chain's next clip on the last 5 decoded
    frames of a's last clip (its own character and pose); b still delivers its 9 frames;
    deterministic, and not b rendered on its own."""
    import farm.model.animate as animate
    from farm.engine.orders import ClipInputs, model_ref
    from farm.model.decode import to_uint8
    from farm.model.inputs import Carried, InputEncoder
    from farm.model.loader import ModelLoader, resolve_model
    from farm.plan.film import plan_film
    from farm.spec.film import resolve_film
    from farm.spec.profiles import ANIMATE_14B
    from farm.spec.storyboard import parse_storyboard

    folder = tiny_dirs("animate-14b")
    write_image(tmp_path / "hero_a.png", 48, 64, seed=1)
    write_image(tmp_path / "hero_b.png", 64, 48, seed=2)
    write_video(tmp_path / "pose_a.mp4", 20, 16, W, H, seed=3)
    write_video(tmp_path / "pose_b.mp4", 12, 16, W, H, seed=4)
    # a: a chain carrying 5 frames, clips of 9 frames: 9 + 4 + 4 delivered
    a = {"id": "a", "prompt": "a dancer spins", "frames": 17, "seed": 3, "continuity": "chain",
         "window": 3, "carry_frames": 5, "references": [str(tmp_path / "hero_a.png")],
         "pose_video": str(tmp_path / "pose_a.mp4")}
    b = {"id": "b", "prompt": "a dancer bows", "frames": 9, "seed": 7, "start_from": "a",
         "carry_frames": 5, "references": [str(tmp_path / "hero_b.png")],
         "pose_video": str(tmp_path / "pose_b.mp4")}
    seen, real = [], animate.clip_condition

    def record(vae, features, pose, face, prev, carry):
        seen.append((prev, real(vae, features, pose, face, prev, carry)))
        return seen[-1][1]
    monkeypatch.setattr(animate, "clip_condition", record)
    film = render(tmp_path, "film", folder, [a, b])
    monkeypatch.undo()
    assert film["b"].shape == (9, H, W, 3)  # the carried frames are b's first 5
    # (a's and b's image tasks build a first clip each; a's chain two next clips, then
    # a's last decode b's first clip: the clip conditioned last)
    carried = [(p, c) for p, c in seen if p is not None]
    assert len(carried) == 3
    prev, first_b = carried[-1]
    # 1. carried: the last 5 decoded frames of a's last clip: the one it carried in
    # (re-rendered, not delivered again) and the 4 it delivered, as a chain carries them
    assert prev.shape == (1, 3, 5, H, W)
    assert np.array_equal(np.stack(list(to_uint8(prev)))[1:], film["a"][-4:])
    # 2. = the chain's next-clip conditioning from those frames, with b's own inputs
    story = {"title": "t", "fps": 16, "width": W, "height": H, "steps": STEPS, "scenes": [a, b]}
    plan = plan_film(resolve_film(parse_storyboard(story), ANIMATE_14B, model=folder))
    ref, inputs = model_ref(plan), plan.film.scene("b").inputs
    encoder = InputEncoder(ModelLoader(resolve_model(folder)), ANIMATE_14B)
    clip = ClipInputs(inputs, 16, 0, 9, first=False, last=True, carry=5)  # a chain's next
    features = encoder.family.features(ref, clip)
    want = encoder.clip(ref, features, clip, Carried(prev, list(to_uint8(prev))))
    assert torch.equal(first_b.latents, want.latents)
    assert all(torch.equal(first_b.kwargs[k], v) for k, v in want.kwargs.items())
    # (the character frame is b's: `features` are b's); the 5 carried frames are known
    mask = first_b.latents[:, :4, 1:]  # after the character frame: frames 0 | 1-4 | 5-8
    assert mask[:, :, :2].eq(1).all() and mask[:, :, 2:].eq(0).all()
    # 3. deterministic, and the carried frames matter
    again = render(tmp_path, "again", folder, [a, b])
    np.testing.assert_array_equal(again["b"], film["b"])
    alone = render(tmp_path, "alone", folder, [{k: v for k, v in b.items()
                                                 if k not in ("start_from", "carry_frames")}])
    assert not np.array_equal(alone["b"], film["b"])



def test_rerender_of_an_animate_source_rerenders_its_dependant(tmp_path):
    """a ── b (start_from a, carrying 5 frames), c between them: a re-render of a renders
    b again from a's new last frames (the same frames: same seeds), c stays on disk."""
    from tests.helpers import make_film, scene
    from tests.model.test_start_from import check_rerender_of_a

    write_image(tmp_path / "hero.png", 48, 64, seed=1)
    write_video(tmp_path / "pose.mp4", 12, 16, 32, 32, seed=3)
    media = {"references": [str(tmp_path / "hero.png")], "pose_video": str(tmp_path / "pose.mp4")}
    film = make_film([scene("a", 9, seed=1, **media), scene("c", 5, seed=2, **media),
                      scene("b", 9, seed=3, start_from="a", carry_frames=5, **media)],
                     "animate-14b", model="tiny-animate-14b", steps=3, width=32, height=32)
    check_rerender_of_a(film, "tiny-animate-14b", tmp_path)
