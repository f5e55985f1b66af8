"""First-frame conditioning, as diffusers' WanImageToVideoPipeline builds it.

Two ways the Wan2.2 families take a first frame:

    I2V-A14B ("concat"): the transformer sees 36 channels per latent frame
        [ noisy latents (16) | mask (4) | VAE(image, 0, 0, ...) (16) ]
        mask = 1 on the 4 sub-frames of latent 0 (pixel frame 0), 0 elsewhere
    TI2V-5B ("first_frame"): latent 0 IS the encoded image, with timestep 0 on its tokens
        model input = (1 - m) * VAE(image) + m * latents,   m = 0 on latent 0, 1 elsewhere
    I2V-A14B with a last image (FLF2V): as concat, VAE(image, 0, ..., 0, last image) and
        the mask 1 on the first and the last frame.

Chain mode uses the same path: segment k+1's image is segment k's last decoded frame.
Animate ("concat", farm.model.animate) and VACE ("control", farm.model.vace) add latent
frames in front of the clip's own (`prefix`) and extra transformer inputs (`kwargs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Condition:
    # "concat" (I2V-A14B, Animate), "first_frame" (TI2V-5B), "control" (VACE: the
    # latents go in alone, the conditioning through `kwargs`) or "s2v" (likewise)
    kind: str
    # concat: (1, 4 + C, P + L, h, w); first_frame: (1, C, 1, h, w); control: None
    latents: torch.Tensor | None
    # Latent frames in front of the clip's own (Animate: the character, VACE: one per
    # reference image); the noise has them too and the last phase drops them.
    prefix: int = 0
    # Extra transformer inputs (VACE: control_hidden_states and its scale; Animate: the
    # CLIP image embedding, pose latents and face pixels).
    kwargs: dict[str, torch.Tensor] = field(default_factory=dict)
    # Inputs the unconditional forward replaces by a constant (Animate: the face, -1;
    # S2V: the audio, 0).
    uncond_fill: dict[str, float] = field(default_factory=dict)
    # Latent frames the decoder runs in front of the clip's own, whose frames it then
    # drops (S2V: the reference latent, or the 19 motion latents of the history).
    lead: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        tensors = [self.latents, self.lead, *self.kwargs.values()]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)

    def model_kwargs(self, device, dtype, uncond: bool = False) -> dict[str, torch.Tensor]:
        """The extra inputs of a forward, on `device`, floats in the model's dtype."""
        out = {}
        for k, v in self.kwargs.items():
            v = v.to(device, dtype) if v.is_floating_point() else v.to(device)
            out[k] = (torch.full_like(v, self.uncond_fill[k]) if uncond and k in self.uncond_fill
                      else v)
        return out


def image_tensor(frame: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, H, W) float32 in [-1, 1], as diffusers' image processor."""
    x = torch.from_numpy(frame.astype(np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    return 2.0 * x - 1.0


def encode_latents(vae, video: torch.Tensor) -> torch.Tensor:
    """(B, 3, F, H, W) in [-1, 1] -> normalised latents (B, C, L, h, w), float32."""
    from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents

    cfg = vae.config
    latent = retrieve_latents(vae.encode(video.to(vae.device, vae.dtype)), sample_mode="argmax")
    latent = latent.to(torch.float32)
    mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(latent.device)
    inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1).to(latent.device)
    return (latent - mean) * inv_std


@torch.no_grad()
def make_condition(vae, image: torch.Tensor, num_frames: int, expand_timesteps: bool,
                   last_image: torch.Tensor | None = None) -> Condition:
    """Conditioning for a clip of `num_frames` pixel frames starting at `image` (1, 3, H, W)
    (and ending at `last_image`, FLF2V: concat families only)."""
    cfg = vae.config
    image = image.unsqueeze(2)  # (1, 3, 1, H, W)
    _, _, _, height, width = image.shape
    if expand_timesteps:
        video = image
    else:
        # 1. the clip's frames: the given ones, zeros elsewhere    (1, 3, num_frames, H, W)
        ends = [image] if last_image is None else [image, last_image.unsqueeze(2)]
        zeros = image.new_zeros(1, image.shape[1], num_frames - len(ends), height, width)
        video = torch.cat([image, zeros, *ends[1:]], dim=2)
    # 2. VAE encode, normalised
    latent = encode_latents(vae, video)
    if expand_timesteps:
        return Condition("first_frame", latent)  # (1, C, 1, h, w)
    # 3. mask channels in front: (1, 4 + C, L, h, w)
    mask = _mask(num_frames, cfg.scale_factor_temporal, latent.shape[-2:], last_image is not None)
    return Condition("concat", torch.cat([mask.to(latent.device), latent], dim=1))


def _mask(num_frames: int, temporal: int, hw: torch.Size, last: bool = False) -> torch.Tensor:
    """(1, temporal, L, h, w): 1 on the sub-frames of the given first (and last) frame."""
    h, w = hw
    mask = torch.ones(1, 1, num_frames, h, w)
    mask[:, :, 1:num_frames - 1 if last else num_frames] = 0
    first = torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=temporal)
    mask = torch.cat([first, mask[:, :, 1:]], dim=2)  # (1, 1, 4 + num_frames - 1, h, w)
    return mask.view(1, -1, temporal, h, w).transpose(1, 2)


def first_frame_mask(latents: torch.Tensor) -> torch.Tensor:
    """(1, 1, F, h, w) float32: 0 on latent frame 0 (the given image), 1 elsewhere."""
    _, _, f, h, w = latents.shape
    mask = torch.ones(1, 1, f, h, w, dtype=torch.float32, device=latents.device)
    mask[:, :, 0] = 0
    return mask
