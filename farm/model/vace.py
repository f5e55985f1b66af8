"""VACE conditioning (Wan2.2-VACE-Fun-A14B), exactly as diffusers' WanVACEPipeline builds it
(`preprocess_conditions`, `prepare_video_latents`, `prepare_masks`).

One clip of F pixel frames (L = (F - 1) / 4 + 1 latent frames), R reference images:

    video  (1, 3, F, H, W) in [-1, 1]: control video, known frames (first / last image,
           frames carried from the previous clip), 0 (grey) elsewhere
    mask   (1, 1, F, H, W) in [0, 1]: 1 = generate, 0 = keep the video there
    control_hidden_states (1, 96, R + L, h, w):
        [ VAE(video * (1 - m)) (16) | VAE(video * m) (16) | mask 8x8 space-to-depth (64) ]
        m = mask > 0.5; each reference: [ VAE(ref) | 0 ] and mask 0, in front (the last
        reference first: diffusers prepends them one by one)
    the noise has R + L latent frames; the last phase drops the R reference frames.

Reference latents depend only on the image and the scene size: they are encoded once per
scene (`reference_latents`) and reused by every clip.
"""

from __future__ import annotations

import numpy as np
import torch

from farm.model.condition import Condition, encode_latents


@torch.no_grad()
def reference_latents(vae, images: list[np.ndarray], height: int, width: int) -> list[torch.Tensor]:
    """Each reference (uint8, its own size) fitted into the frame on a white canvas and
    encoded: (32, 1, h, w) = [latent | zeros], in the order given."""
    from diffusers.video_processor import VideoProcessor
    from PIL import Image

    processor = VideoProcessor(vae_scale_factor=2 ** len(vae.temperal_downsample))
    out = []
    for rgb in images:
        # 1. diffusers' preprocessing at the image's own size (multiple of 8)   (1, 3, h0, w0)
        image = processor.preprocess(Image.fromarray(rgb), None, None)
        # 2. scale to fit (H, W), centred on a white canvas                      (3, H, W)
        ih, iw = image.shape[-2:]
        scale = min(height / ih, width / iw)
        nh, nw = int(ih * scale), int(iw * scale)
        resized = torch.nn.functional.interpolate(image, size=(nh, nw), mode="bilinear",
                                                  align_corners=False).squeeze(0)
        top, left = (height - nh) // 2, (width - nw) // 2
        canvas = torch.ones(3, height, width)
        canvas[:, top:top + nh, left:left + nw] = resized
        # 3. encode alone, zeros for the "reactive" half                         (32, 1, h, w)
        latent = encode_latents(vae, canvas[None, :, None]).to(vae.dtype).squeeze(0)
        out.append(torch.cat([latent, torch.zeros_like(latent)], dim=0))
    return out


@torch.no_grad()
def clip_condition(vae, video: torch.Tensor, mask: torch.Tensor, refs: list[torch.Tensor],
                   num_layers: int, patch: int = 2, scale: float = 1.0) -> Condition:
    """The control stream of one clip; `video` (1, 3, F, H, W), `mask` (1, 1, F, H, W)."""
    # 1. inactive / reactive halves, encoded separately                        (1, 32, L, h, w)
    m = torch.where(mask > 0.5, 1.0, 0.0)
    inactive = encode_latents(vae, video * (1 - m)).to(vae.dtype)
    reactive = encode_latents(vae, video * m).to(vae.dtype)
    latents = torch.cat([inactive, reactive], dim=1)[0]
    for ref in refs:  # each in front of everything so far
        latents = torch.cat([ref.to(latents), latents], dim=1)  # (32, R + L, h, w)
    # 2. the mask, 8x8 space-to-depth, nearest-exact to the latent frames   (64, R + L, h, w)
    packed = pack_mask(mask[0, 0], vae, patch)
    packed = torch.cat([torch.zeros_like(packed[:, :len(refs)]), packed], dim=1)
    control = torch.cat([latents.float(), packed], dim=0)[None]  # (1, 96, R + L, h, w)
    return Condition("control", None, prefix=len(refs), kwargs={
        "control_hidden_states": control,
        "control_hidden_states_scale": torch.full((num_layers,), float(scale))})


def pack_mask(mask: torch.Tensor, vae, patch: int) -> torch.Tensor:
    """(F, H, W) -> (s * s, L, H / s, W / s), s the VAE's spatial factor."""
    s = 2 ** len(vae.temperal_downsample)
    t = 2 ** sum(vae.temperal_downsample)
    f, height, width = mask.shape
    frames = (f + t - 1) // t
    nh, nw = height // (s * patch) * patch, width // (s * patch) * patch
    packed = mask.reshape(f, nh, s, nw, s).permute(2, 4, 0, 1, 3).flatten(0, 1)
    return torch.nn.functional.interpolate(packed[None], size=(frames, nh, nw),
                                           mode="nearest-exact")[0]


def clip_frames(num_frames: int, height: int, width: int, control: torch.Tensor | None,
                mask: torch.Tensor | None, known: dict[int, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip's video and mask: the control video (or grey) and its mask (or all 1),
    then the `known` frames (index -> (3, H, W) in [-1, 1]) kept: mask 0 there."""
    video = control.clone() if control is not None else torch.zeros(1, 3, num_frames, height, width)
    m = mask.clone() if mask is not None else torch.ones(1, 1, num_frames, height, width)
    for i, frame in known.items():
        video[0, :, i] = frame
        m[0, :, i] = 0.0
    return video, m
