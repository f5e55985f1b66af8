"""Chain mode: a scene as sequential clips, each starting from the previous clip's last
frame (the shared frame dropped once). Every clip must equal diffusers' own pipeline for
that clip: WanImageToVideoPipeline(image=<previous last frame>, latents=<the clip's noise>).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from farm.cli import main
from farm.model.noise import initial_noise
from farm.spec.profiles import profile_for

pytestmark = pytest.mark.model
W, H, STEPS = 64, 64, 6


def render(tmp_path, folder, scene: dict) -> np.ndarray:
    story = {"title": "chain", "fps": 16, "width": W, "height": H, "model": folder, "steps": STEPS,
             "scenes": [scene]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    assert main(["render", str(tmp_path / "film.yaml"), "-o", str(tmp_path / "out.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    paths = sorted((tmp_path / "frames" / scene["id"]).glob("*.png"))
    assert len(paths) == scene["frames"]
    return np.stack([np.asarray(Image.open(p)) for p in paths])


def clip(family, folder, image, first_latent, num_latents, guidance) -> np.ndarray:
    """One clip rendered by diffusers; T2V when image is None."""
    from diffusers import WanImageToVideoPipeline, WanPipeline

    p = profile_for(family)
    noise = initial_noise(5, "c", num_latents, p.latent_channels, H // p.vae_spatial,
                          W // p.vae_spatial, first_frame=first_latent)
    kw = dict(prompt="a boat on a lake", negative_prompt="", height=H, width=W,
              num_frames=1 + 4 * (num_latents - 1), num_inference_steps=STEPS,
              guidance_scale=guidance, latents=noise, output_type="np")
    if len(p.experts) == 2:
        kw["guidance_scale_2"] = guidance
    if image is None:
        out = WanPipeline.from_pretrained(folder)(**kw)
    else:
        pipe = WanImageToVideoPipeline.from_pretrained(folder, image_encoder=None,
                                                       image_processor=None)
        out = pipe(image=Image.fromarray(image), **kw)
    return (out.frames[0] * 255).round().astype(np.int16)


def assert_close(farm: np.ndarray, ref: np.ndarray) -> None:
    assert farm.shape == ref.shape
    assert np.abs(farm.astype(np.int16) - ref).max() <= 1


def test_ti2v_chain_clips_equal_diffusers(tiny_dirs, tmp_path):
    folder = tiny_dirs("ti2v-5b")
    # 17 frames = 5 latents in windows of 3: clips of latents [0, 3) and [2, 5).
    farm = render(tmp_path, folder, {"id": "c", "prompt": "a boat on a lake", "frames": 17,
                                     "seed": 5, "continuity": "chain", "window": 3,
                                     "guidance": 5.0, "negative_prompt": ""})
    first = clip("ti2v-5b", folder, None, 0, 3, 5.0)
    assert_close(farm[:9], first)
    second = clip("ti2v-5b", folder, farm[8].astype(np.uint8), 2, 3, 5.0)
    # The second clip's frame 0 re-decodes the shared frame; the farm keeps the first copy.
    assert_close(farm[9:], second[1:])


def test_i2v_scene_image_and_chain_equal_diffusers(tiny_dirs, tmp_path):
    folder = tiny_dirs("i2v-a14b")
    rng = np.random.default_rng(0)
    start = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(start).save(tmp_path / "start.png")
    farm = render(tmp_path, folder, {"id": "c", "prompt": "a boat on a lake", "frames": 17,
                                     "seed": 5, "continuity": "chain", "window": 3,
                                     "guidance": 3.5, "negative_prompt": "", "image": "start.png"})
    assert_close(farm[:9], clip("i2v-a14b", folder, start, 0, 3, 3.5))
    assert_close(farm[9:], clip("i2v-a14b", folder, farm[8].astype(np.uint8), 2, 3, 3.5)[1:])


def test_t2v_chain_is_rejected_naming_the_families(tmp_path, capsys):
    (tmp_path / "f.yaml").write_text(yaml.safe_dump({
        "title": "t", "fps": 16, "width": 64, "height": 64,
        "scenes": [{"id": "a", "prompt": "p", "frames": 161, "continuity": "chain"}]}))
    assert main(["validate", str(tmp_path / "f.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Families that support it: animate-14b, i2v-a14b, s2v-14b, ti2v-5b, vace-a14b" in err
