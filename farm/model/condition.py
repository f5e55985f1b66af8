"""First-frame conditioning, as diffusers' WanImageToVideoPipeline builds it.

Two ways the Wan2.2 families take a first frame:

    I2V-A14B ("concat"): the transformer sees 36 channels per latent frame
        [ noisy latents (16) | mask (4) | VAE(image, 0, 0, ...) (16) ]
        mask = 1 on the 4 sub-frames of latent 0 (pixel frame 0), 0 elsewhere
    TI2V-5B ("first_frame"): latent 0 IS the encoded image, with timestep 0 on its tokens
        model input = (1 - m) * VAE(image) + m * latents,   m = 0 on latent 0, 1 elsewhere

Chain mode uses the same path: segment k+1's image is segment k's last decoded frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Condition:
    # "concat" (I2V-A14B) or "first_frame" (TI2V-5B)
    kind: str
    # concat: (1, 4 + C, L, h, w); first_frame: (1, C, 1, h, w); normalised latent space
    latents: torch.Tensor

    @property
    def nbytes(self) -> int:
        return self.latents.numel() * self.latents.element_size()


def image_tensor(frame: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, H, W) float32 in [-1, 1], as diffusers' image processor."""
    x = torch.from_numpy(frame.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    return 2.0 * x - 1.0


@torch.no_grad()
def make_condition(vae, image: torch.Tensor, num_frames: int, expand_timesteps: bool) -> Condition:
    """Conditioning for a clip of `num_frames` pixel frames starting at `image` (1, 3, H, W)."""
    from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents

    cfg = vae.config
    image = image.unsqueeze(2)  # (1, 3, 1, H, W)
    _, _, _, height, width = image.shape
    if expand_timesteps:
        video = image
    else:
        zeros = image.new_zeros(1, image.shape[1], num_frames - 1, height, width)
        video = torch.cat([image, zeros], dim=2)  # (1, 3, num_frames, H, W)
    video = video.to(vae.device, vae.dtype)
    mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1)
    latent = retrieve_latents(vae.encode(video), sample_mode="argmax").to(torch.float32)
    latent = (latent - mean.to(latent.device)) * inv_std.to(latent.device)
    if expand_timesteps:
        return Condition("first_frame", latent)  # (1, C, 1, h, w)
    return Condition("concat", torch.cat([_mask(num_frames, cfg.scale_factor_temporal,
                                                 latent.shape[-2:]).to(latent.device), latent], dim=1))


def _mask(num_frames: int, temporal: int, hw: torch.Size) -> torch.Tensor:
    """(1, temporal, L, h, w): 1 on the sub-frames of the given first frame, 0 elsewhere."""
    h, w = hw
    mask = torch.ones(1, 1, num_frames, h, w)
    mask[:, :, 1:] = 0
    first = torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=temporal)
    mask = torch.cat([first, mask[:, :, 1:]], dim=2)  # (1, 1, 4 + num_frames - 1, h, w)
    return mask.view(1, -1, temporal, h, w).transpose(1, 2)


def first_frame_mask(latents: torch.Tensor) -> torch.Tensor:
    """(1, 1, F, h, w) float32: 0 on latent frame 0 (the given image), 1 elsewhere."""
    _, _, f, h, w = latents.shape
    mask = torch.ones(1, 1, f, h, w, dtype=torch.float32, device=latents.device)
    mask[:, :, 0] = 0
    return mask
