"""Correctness anchors of the conditioning families: a tiny scene rendered by the farm
equals diffusers' own pipeline for the same inputs and noise (max 1/255 per channel):

    vace-a14b    WanVACEPipeline(video, mask, reference_images)          one clip
    animate-14b  WanAnimatePipeline(image, pose_video, face_video)       two clips (the
                 second carries the first's last frame), and one carrying 5 frames
    i2v-a14b     WanImageToVideoPipeline(image, last_image)              FLF2V, one clip

Media reach diffusers as the farm's decoder (PyAV path) gives them at the scene's size,
so the comparison is of the conditioning, the denoising and the decode. The tiny VAE
maps very different latents to nearly the same pictures (its outputs vary by a few
levels), so each clip's final latents are compared too (max 1e-4; swapping two reference
images, for instance, moves them by 3e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from farm.cli import main
from farm.cli.common import load_film
from farm.media.decode import decode_image, decode_video
from farm.model.families.animate_14b import TINY_FACE_SIZE
from farm.model.noise import initial_noise
from farm.model.worker import TorchWorker
from farm.plan.film import plan_film
from farm.spec.profiles import profile_for
from tests.media_files import write_image, write_video

pytestmark = pytest.mark.model
W, H, STEPS, FPS = 32, 32, 4, 16


def render(tmp_path, monkeypatch, folder, scene: dict) -> tuple[np.ndarray, list[torch.Tensor]]:
    """The scene's frames, and each clip's final latents (what its decode was given)."""
    clips: list[torch.Tensor] = []
    decode = TorchWorker.decode

    def recording(self, order, latents, *args, **kw):
        clips.append(latents[0].latents.clone())
        return decode(self, order, latents, *args, **kw)

    monkeypatch.setattr(TorchWorker, "decode", recording)
    story = {"title": "anchor", "fps": FPS, "width": W, "height": H, "model": folder,
             "steps": STEPS, "scenes": [scene]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    assert main(["render", str(tmp_path / "film.yaml"), "-o", str(tmp_path / "out.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    paths = sorted((tmp_path / "frames" / scene["id"]).glob("*.png"))
    assert len(paths) == scene["frames"]
    return np.stack([np.asarray(Image.open(p)) for p in paths]).astype(np.int16), clips


class Final:
    """callback_on_step_end that keeps each segment's latents after its last step."""

    def __init__(self):
        self.latents: list[torch.Tensor] = []

    def __call__(self, pipe, i, t, kw):
        if i == len(pipe.scheduler.timesteps) - 1:
            self.latents.append(kw["latents"].clone())
        return kw


def assert_latents(farm: list[torch.Tensor], ref: list[torch.Tensor], prefix: int) -> None:
    assert len(farm) == len(ref)
    for f, r in zip(farm, ref, strict=True):
        assert f.shape == r[:, :, prefix:].shape
        assert (f - r[:, :, prefix:]).abs().max() <= 1e-4


def noise(family: str, scene_id: str, seed: int, latents: int, first: int = 0, prefix: int = 0):
    """The farm's noise of a clip: per-latent-frame noise, reference frames in front."""
    p = profile_for(family)
    shape = (p.latent_channels, H // p.vae_spatial, W // p.vae_spatial)
    own = initial_noise(seed, scene_id, latents, *shape, first_frame=first)
    if not prefix:
        return own
    return torch.cat([initial_noise(seed, f"{scene_id}/prefix@{first}", prefix, *shape), own],
                     dim=2)


def pil(frames) -> list[Image.Image]:
    return [Image.fromarray(f) for f in frames]


def as_uint8(frames: np.ndarray) -> np.ndarray:
    return (frames * 255).round().astype(np.int16)


def assert_close(farm: np.ndarray, ref: np.ndarray) -> None:
    assert farm.shape == ref.shape
    assert np.abs(farm - ref).max() <= 1


def test_vace_clip_with_control_mask_references_and_end_frames_equals_diffusers(tiny_dirs, tmp_path,
                                                                                 monkeypatch):
    from diffusers import WanVACEPipeline

    folder = tiny_dirs("vace-a14b")
    n = 9
    write_video(tmp_path / "depth.webm", n, FPS, 48, 40, seed=1)
    mask = np.zeros((H, W, 3), np.uint8)
    mask[:, W // 2:] = 255  # generate the right half, keep the control video's left half
    Image.fromarray(mask).save(tmp_path / "mask.png")
    for name, (w, h, seed) in {"a": (40, 24, 2), "b": (16, 32, 3), "s": (W, H, 4),
                               "e": (W, H, 5)}.items():
        write_image(tmp_path / f"{name}.png", w, h, seed)
    scene = {"id": "v", "prompt": "a fox in the snow", "frames": n, "seed": 3, "guidance": 5.0,
             "negative_prompt": "", "control_video": "depth.webm", "mask": "mask.png",
             "references": ["a.png", "b.png"], "image": "s.png", "last_image": "e.png"}
    farm, clips = render(tmp_path, monkeypatch, folder, scene)
    plan = plan_film(load_film(tmp_path / "film.yaml"))
    assert [p.expert for p in plan.phases] == [0, 1]  # both experts, a handoff between

    video = list(decode_video(str(tmp_path / "depth.webm"), FPS, n, (W, H)))
    video[0], video[-1] = (decode_image(str(tmp_path / f), (W, H)) for f in ("s.png", "e.png"))
    masks = [mask.copy() for _ in range(n)]
    masks[0][:] = 0
    masks[-1][:] = 0
    refs = [Image.open(tmp_path / f).convert("RGB") for f in ("a.png", "b.png")]
    pipe, final = WanVACEPipeline.from_pretrained(folder), Final()
    out = pipe(prompt="a fox in the snow", negative_prompt="", video=pil(video), mask=pil(masks),
               reference_images=refs, height=H, width=W, num_frames=n, num_inference_steps=STEPS,
               guidance_scale=5.0, guidance_scale_2=5.0, callback_on_step_end=final,
               latents=noise("vace-a14b", "v", 3, 3, prefix=2), output_type="np")
    assert_close(farm, as_uint8(out.frames[0]))
    assert_latents(clips, final.latents, prefix=2)


def _animate_media(tmp_path, frames: int):
    write_video(tmp_path / "pose.mp4", frames, FPS, W, H, seed=6)
    write_video(tmp_path / "face.webm", frames, FPS, 24, 24, seed=7)
    write_image(tmp_path / "hero.png", 24, 40, seed=8)
    pose = decode_video(str(tmp_path / "pose.mp4"), FPS, frames, (W, H))
    face = decode_video(str(tmp_path / "face.webm"), FPS, frames, (TINY_FACE_SIZE, TINY_FACE_SIZE))
    return Image.open(tmp_path / "hero.png").convert("RGB"), pil(pose), pil(face)


@pytest.mark.parametrize("carry", [1, 5])
def test_animate_two_clips_equal_diffusers_segments(tiny_dirs, tmp_path, monkeypatch, carry):
    import diffusers.pipelines.wan.pipeline_wan_animate as animate_module
    from diffusers import WanAnimatePipeline

    folder = tiny_dirs("animate-14b")
    clip = 17 if carry == 1 else 21  # 5 / 6 latent frames; clips overlap by carry frames
    n = 2 * clip - carry
    image, pose, face = _animate_media(tmp_path, n)
    scene = {"id": "m", "prompt": "a dancer", "frames": n, "seed": 4, "continuity": "chain",
             "window": (clip - 1) // 4 + 1, "carry_frames": carry, "references": ["hero.png"],
             "pose_video": "pose.mp4", "face_video": "face.webm"}
    farm, clips = render(tmp_path, monkeypatch, folder, scene)

    # diffusers draws each segment's noise in its loop: hand it the farm's per clip.
    starts = iter([0, (clip - carry) // 4])
    monkeypatch.setattr(animate_module, "randn_tensor", lambda shape, **kw: noise(
        "animate-14b", "m", 4, shape[2] - 1, next(starts), prefix=1))
    pipe, final = WanAnimatePipeline.from_pretrained(folder), Final()
    out = pipe(image=image, pose_video=pose, face_video=face, prompt="a dancer", height=H,
               width=W, segment_frame_length=clip, num_inference_steps=STEPS, guidance_scale=1.0,
               prev_segment_conditioning_frames=carry, callback_on_step_end=final, output_type="np")
    assert_close(farm, as_uint8(out.frames[0]))
    assert_latents(clips, final.latents, prefix=1)


def test_i2v_first_and_last_frame_equals_diffusers(tiny_dirs, tmp_path, monkeypatch):
    from diffusers import WanImageToVideoPipeline

    folder = tiny_dirs("i2v-a14b")
    write_image(tmp_path / "s.png", 48, 40, seed=9)
    write_image(tmp_path / "e.png", W, H, seed=10)
    scene = {"id": "f", "prompt": "a boat", "frames": 9, "seed": 2, "guidance": 3.5,
             "negative_prompt": "", "image": "s.png", "last_image": "e.png"}
    farm, clips = render(tmp_path, monkeypatch, folder, scene)
    pipe, final = WanImageToVideoPipeline.from_pretrained(folder, image_encoder=None,
                                                          image_processor=None), Final()
    first, last = (Image.fromarray(decode_image(str(tmp_path / f), (W, H)))
                   for f in ("s.png", "e.png"))
    out = pipe(image=first, last_image=last, prompt="a boat", negative_prompt="", height=H, width=W,
               num_frames=9, num_inference_steps=STEPS, guidance_scale=3.5, guidance_scale_2=3.5,
               latents=noise("i2v-a14b", "f", 2, 3), callback_on_step_end=final, output_type="np")
    assert_close(farm, as_uint8(out.frames[0]))
    assert_latents(clips, final.latents, prefix=0)
