"""Correctness anchor: the farm's frames == diffusers' WanPipeline for the same seed.

The farm renders through its CLI (plan -> scheduler -> phase runners -> streaming decode
-> PNG files); the reference is one `WanPipeline.from_pretrained(folder)(...)` call with
the same prompt, sizes, steps, guidance and the farm's initial noise as `latents`.
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

CASES = {
    # family: (width, height, frames, guidance)
    "t2v-a14b": (64, 48, 17, {"high": 4.0, "low": 3.0}),
    "ti2v-5b": (64, 32, 9, 5.0),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_single_scene_matches_wan_pipeline(family, tiny_dirs, tmp_path):
    from diffusers import WanPipeline

    width, height, frames, guidance = CASES[family]
    folder = tiny_dirs(family)
    story = {"title": "anchor", "fps": 16, "width": width, "height": height, "model": folder,
             "steps": 8, "scenes": [{"id": "s010", "prompt": "a red fox runs through snow",
                                     "negative_prompt": "blurry", "frames": frames, "seed": 7,
                                     "guidance": guidance}]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    rc = main(["render", str(tmp_path / "film.yaml"), "-o", str(tmp_path / "out.mp4"),
               "--frames-dir", str(tmp_path / "frames")])
    assert rc == 0
    farm = np.stack([np.asarray(Image.open(tmp_path / "frames" / "s010" / f"s010.{i + 1:04d}.png"))
                     for i in range(frames)])

    p = profile_for(family)
    noise = initial_noise(7, "s010", (frames - 1) // 4 + 1, p.latent_channels,
                          height // p.vae_spatial, width // p.vae_spatial)
    pipe = WanPipeline.from_pretrained(folder)
    g = guidance if isinstance(guidance, dict) else {"high": guidance}
    extra = {"guidance_scale_2": g["low"]} if "low" in g else {}
    ref = pipe(prompt="a red fox runs through snow", negative_prompt="blurry", height=height,
               width=width, num_frames=frames, num_inference_steps=8, guidance_scale=g["high"],
               latents=noise, output_type="np", **extra).frames[0]
    ref = (ref * 255).round().astype(np.int16)

    assert farm.shape == ref.shape == (frames, height, width, 3)
    # Only uint8 rounding may differ (MKL_CBWR=COMPATIBLE keeps the kernels reproducible).
    assert np.abs(farm.astype(np.int16) - ref).max() <= 1
