"""Streaming decode: the Wan VAE decoder, one latent frame at a time, with its own cache.

The Wan VAE decoder is causal: AutoencoderKLWan._decode runs it one latent frame per call
with a feature cache. Doing the same here, with a cache owned by this object, yields
frames as soon as each latent frame is decoded and is bit-identical to a full
`vae.decode` of the same latents (latent 0 -> 1 frame, every later latent -> 4 frames).

    latents (1, C, L, h, w) normalised ──denormalise──> z ──post_quant_conv──> x
    for i in 0..L-1:  decoder(x[:, :, i:i+1], cache) ──unpatchify, clamp──> frames
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from reelfarm_kernels.frame_pack import FLOATS, frame_pack


class StreamingDecoder:
    def __init__(self, vae):
        self.vae = vae
        self.cache: list = [None] * vae._cached_conv_counts["decoder"]
        self.first = True

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> Iterator[torch.Tensor]:
        """Yield decoded chunks (1, 3, f, H, W) in [-1, 1] for each latent frame given."""
        from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

        vae = self.vae
        cfg = vae.config
        z = latents.to(vae.device, vae.dtype)
        # Same arithmetic as WanPipeline: latents / (1 / std) + mean
        mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1).to(z.device, z.dtype)
        inv_std = 1.0 / (torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1)
                         .to(z.device, z.dtype))
        z = z / inv_std + mean
        x = vae.post_quant_conv(z)
        for i in range(x.shape[2]):
            out = self._decode_one(x[:, :, i:i + 1])
            self.first = False
            if cfg.patch_size is not None:
                out = unpatchify(out, patch_size=cfg.patch_size)
            yield self._finish(torch.clamp(out, min=-1.0, max=1.0))

    def _decode_one(self, x: torch.Tensor) -> torch.Tensor:
        """One latent frame (1, C, 1, h, w) through the decoder, with this cache."""
        return self.vae.decoder(x, feat_cache=self.cache, feat_idx=[0], first_chunk=self.first)

    def _finish(self, chunk: torch.Tensor) -> torch.Tensor:
        return chunk


def to_uint8(chunk: torch.Tensor) -> np.ndarray:
    """(1, 3, f, H, W) in [-1, 1] -> (f, H, W, 3) uint8, as diffusers' postprocess + *255.

    Packed where the chunk lives (reelfarm_kernels.frame_pack: its Triton kernel where
    Triton runs, else its torch reference; the same bytes either way), so a GPU decoder
    copies 3 bytes a pixel to the host instead of 12 (float32 RGB)."""
    if chunk.dtype not in FLOATS:  # the packer reads 16/32-bit floats; others as float32
        chunk = chunk.float()
    return frame_pack(chunk, yuv=False).rgb.cpu().numpy()
