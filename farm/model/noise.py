"""Initial noise, keyed per latent frame so that cutting a scene never changes it.

Each latent frame f of a scene draws its noise from its own generator, seeded by

    sha256(f"reelfarm-noise/v1/{seed}/{scene_id}/{f}")[:8] as a 63-bit integer

and `torch.randn((1, C, 1, H, W), generator=..., dtype=float32)` on the CPU. Two windows
that share frame f therefore start from the same noise, and so do two different cut
plans of the same scene. The result is float32 on the CPU whatever the device of the
model (CPU generators are the same on every machine); callers move it.
"""

from __future__ import annotations

import hashlib

import torch


def frame_seed(seed: int, scene_id: str, frame: int) -> int:
    digest = hashlib.sha256(f"reelfarm-noise/v1/{seed}/{scene_id}/{frame}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def initial_noise(seed: int, scene_id: str, num_latent_frames: int, channels: int,
                  latent_height: int, latent_width: int, *, first_frame: int = 0) -> torch.Tensor:
    """Noise of latent frames [first_frame, first_frame + num_latent_frames) of a scene.

    Returns shape (1, C, F, H, W), float32, CPU.
    """
    if num_latent_frames < 1 or channels < 1 or latent_height < 1 or latent_width < 1:
        raise ValueError("num_latent_frames, channels, latent_height and latent_width must be >= 1")
    frames = []
    for f in range(first_frame, first_frame + num_latent_frames):
        g = torch.Generator("cpu").manual_seed(frame_seed(seed, scene_id, f))
        frames.append(torch.randn((1, channels, 1, latent_height, latent_width), generator=g,
                                  dtype=torch.float32))
    return torch.cat(frames, dim=2)  # (1, C, F, H, W)
