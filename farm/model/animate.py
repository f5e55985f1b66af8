"""Wan-Animate conditioning (Wan2.2-Animate-14B, "animate" mode), exactly as diffusers'
WanAnimatePipeline builds it for each of its segments (`prepare_reference_image_latents`,
`prepare_prev_segment_cond_latents`, `prepare_pose_latents`, `encode_image`).

One clip of F pixel frames (L = (F - 1) / 4 + 1 latent frames) carrying p (1 or 5) frames
of the previous clip:

    model input (1, 16 + 20, 1 + L, h, w) = [ noise (16, 1 + L) | reference (20, 1 + L) ]
        reference = [ mask 1 (4) | VAE(character) (16) ]              latent frame 0
                  ++ [ i2v mask (4) | VAE(prev p frames, 0, ..., 0) (16) ]  frames 1..L
                     (first clip: no previous frames, mask 0 and zeros)
    encoder_hidden_states_image  CLIP(character), penultimate layer    (1, N, D)
    pose_hidden_states           VAE(pose frames of the clip)          (1, 16, L, h, w)
    face_pixel_values            face frames at the motion encoder's size (1, 3, F, S, S);
                                 the unconditional forward sees -1 (no face), as diffusers
    the last phase drops latent frame 0; decoded, a clip after the first drops its p
    carried frames.

The character's latents and CLIP embedding are computed once per scene (`character`).
"""

from __future__ import annotations

import numpy as np
import torch

from farm.model.condition import Condition, encode_latents


@torch.no_grad()
def character(vae, processor, encoder, rgb: np.ndarray, height: int, width: int,
              patch: tuple[int, int] = (2, 2)) -> dict[str, torch.Tensor]:
    """The scene's character image (uint8, its own size): reference latents and CLIP
    embedding, reused by every clip of the scene."""
    from diffusers.pipelines.wan.image_processor import WanAnimateImageProcessor
    from PIL import Image

    image = Image.fromarray(rgb)
    # 1. CLIP: processor at its own resolution, hidden states of the penultimate layer
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    embeds = encoder(pixel_values=pixels.to(encoder.device, encoder.dtype),
                     output_hidden_states=True).hidden_states[-2]  # (1, N, D)
    # 2. the character fitted into the frame (black fill), encoded       (1, 16, 1, h, w)
    fitter = WanAnimateImageProcessor(vae_scale_factor=vae.config.scale_factor_spatial,
                                      spatial_patch_size=patch, resample="bilinear", fill_color=0)
    fitted = fitter.preprocess(image, height=height, width=width, resize_mode="fill")
    latent = encode_latents(vae, fitted.to(torch.float32).unsqueeze(2))
    # 3. mask 1 in front                                                     (1, 20, 1, h, w)
    ones = torch.ones(1, vae.config.scale_factor_temporal, 1, *latent.shape[-2:])
    return {"reference": torch.cat([ones, latent], dim=1), "image_embeds": embeds.float()}


@torch.no_grad()
def clip_condition(vae, features: dict[str, torch.Tensor], pose: torch.Tensor,
                   face: torch.Tensor, prev: torch.Tensor | None, carry: int) -> Condition:
    """One clip: `pose` (1, 3, F, H, W) and `face` (1, 3, F, S, S) in [-1, 1], `prev`
    the previous clip's last `carry` decoded frames (1, 3, p, H, W) or None (first clip)."""
    t = vae.config.scale_factor_temporal
    _, _, frames, height, width = pose.shape
    # 1. pose latents                                                        (1, 16, L, h, w)
    pose_latents = encode_latents(vae, pose)
    # 2. the previous clip's last frames, zeros after them                   (1, 16, L, h, w)
    first = prev is None
    if first:
        prev = torch.zeros(1, 3, carry, height, width)
    video = torch.cat([prev.to(torch.float32), torch.zeros(1, 3, frames - carry, height, width)],
                      dim=2)
    prev_latents = encode_latents(vae, video)
    # 3. i2v mask: 1 on the carried frames (none for the first clip)          (1, 4, L, h, w)
    mask = torch.zeros(1, 1, frames, *prev_latents.shape[-2:])
    if not first:
        mask[:, :, :carry] = 1
    mask = torch.cat([torch.repeat_interleave(mask[:, :, :1], t, dim=2), mask[:, :, 1:]], dim=2)
    mask = mask.view(1, -1, t, *mask.shape[-2:]).transpose(1, 2)
    # 4. character frame in front                                        (1, 20, 1 + L, h, w)
    reference = torch.cat([features["reference"], torch.cat([mask, prev_latents], dim=1)], dim=2)
    return Condition("concat", reference, prefix=1, kwargs={
        "encoder_hidden_states_image": features["image_embeds"],
        "pose_hidden_states": pose_latents,
        "face_pixel_values": face.to(torch.float32)}, uncond_fill={"face_pixel_values": -1.0})
