"""Steps 1-2 of the toy training: the VAE (AutoencoderKLWan) and the cached latents.

    1. Reconstruction: a deterministic autoencoder on the posterior mean, L1 weighted on
       the shapes. One step in three is whole single frames (the causal VAE's first-frame
       path, and the backgrounds and frame borders as they are); two in three are clips
       cut to crops around the shape (a quarter of a frame's cost) run through both
       causal caches, with gradients on a few latent frames at a seeded position
       (`rollout`), so the video path (its own temporal convolutions) is trained at every
       position a long clip reaches.
    2. Cache: the training clips encoded once (posterior means); their per-channel mean and
       std become the VAE's latents_mean / latents_std, so the experts see unit latents.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from farm.toy import data
from farm.toy.ranks import Ranks

if TYPE_CHECKING:
    from farm.toy.train import Clock, TrainConfig


def to_pixels(clips: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, F, H, W, 3) uint8 -> (B, 3, F, H, W) float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(clips)).to(device).permute(0, 4, 1, 2, 3).float()
    return x / 127.5 - 1.0


def clips(seed: int, indices, frames: int) -> tuple[list[str], np.ndarray]:
    """(prompts, (B, frames, 64, 64, 3) uint8) of training clips `indices`."""
    pairs = [data.clip(seed, int(i), frames) for i in indices]
    return [p for p, _ in pairs], np.stack([c for _, c in pairs])


def crops(seed: int, indices, frames: int, crop: int) -> np.ndarray:
    """(B, frames, crop, crop, 3) uint8: training clips cut to `crop` pixels around the
    shape's mid-clip position (snapped to the 8-pixel latent grid, jittered by up to a
    latent pixel), so a small crop still shows the shape for most of its frames."""
    out = []
    for i in indices:
        scene = data.training_scene(seed, int(i), frames)
        clip = data.render(scene, frames)
        rng = np.random.default_rng([seed, 7, int(i)])
        vx, vy = scene.velocity
        mid = (scene.start[0] + vx * frames / 2, scene.start[1] + vy * frames / 2)
        ox, oy = (int(np.clip(8 * round((m - crop / 2 + rng.uniform(-8, 8)) / 8), 0, data.SIZE - crop))
                  for m in mid)
        out.append(clip[:, oy:oy + crop, ox:ox + crop])
    return np.stack(out)


def rollout(vae, x: torch.Tensor, train_from: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode and decode x (B, 3, F, H, W) one latent frame at a time through both causal
    caches, exactly as AutoencoderKLWan encodes and decodes (decoded frames not clamped, so
    saturated pixels keep their gradient). Latent frames before `train_from` run without
    gradients: they only bring the caches to the state a long clip has there, which is
    what keeps the decoder stable at any length (a VAE trained on short clips only drifts
    after the frames it saw). Returns (frames, posterior means) of latents >= train_from:

        pixel frames   0 | 1-4 | 5-8 | 9-12 | ...        latent l <- frames 4l-3 .. 4l
        latent frames  0 |  1  |  2  |  3   | ...        (latent 0 <- frame 0 alone)
                       no grad ------| grad ----->       (train_from = 2 here)
    """
    vae.clear_cache()
    frames, means = [], []
    grad = torch.is_grad_enabled()
    for i in range(1 + (x.shape[2] - 1) // 4):
        chunk = x[:, :, :1] if i == 0 else x[:, :, 1 + 4 * (i - 1):1 + 4 * i]
        with torch.set_grad_enabled(grad and i >= train_from):
            vae._enc_conv_idx = [0]
            h = vae.encoder(chunk, feat_cache=vae._enc_feat_map, feat_idx=vae._enc_conv_idx)
            mu = vae.quant_conv(h)[:, :vae.config.z_dim]               # (B, 16, 1, H/8, W/8)
            vae._conv_idx = [0]
            y = vae.decoder(vae.post_quant_conv(mu), feat_cache=vae._feat_map,
                            feat_idx=vae._conv_idx, first_chunk=i == 0)
        if i >= train_from:
            frames.append(y)
            means.append(mu)
    vae.clear_cache()
    return torch.cat(frames, dim=2), torch.cat(means, dim=2)


def vae_loss(vae, x: torch.Tensor, train_from: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, plain L1) of one batch (B, 3, F, H, W): L1 weighted x5 on the shapes (pixels
    far from their row's median), and a small L2 on the latent to bound its scale. A
    deterministic autoencoder on the posterior mean: sampling the untrained posterior
    drowns the latent in noise."""
    recon, z = rollout(vae, x, train_from)
    first = 0 if train_from == 0 else 1 + 4 * (train_from - 1)
    x = x[:, :, first:first + recon.shape[2]]
    fg = (x - x.median(dim=-1, keepdim=True).values).abs().amax(1, keepdim=True) > 0.1
    err = (recon - x).abs()
    return (err * (1.0 + 4.0 * fg)).mean() + 1e-4 * z.pow(2).mean(), err.mean()


def _batch(cfg: TrainConfig, ranks: Ranks, step: int, rng: np.random.Generator):
    """(pixels of this rank's part, train_from, label) of VAE step `step`."""
    first = (1 << 20) + step * cfg.vae_images  # a stream apart from the cached clips
    if step % 3 == 0:
        idx = range(first, first + cfg.vae_images)[ranks.part(cfg.vae_images)]
        return crops(cfg.seed, idx, 1, data.SIZE), 0, "frames"
    latents = 1 + (cfg.vae_frames - 1) // 4
    start = int(rng.integers(0, latents - cfg.vae_train_latents + 1))
    idx = range(first, first + cfg.vae_batch)[ranks.part(cfg.vae_batch)]
    frames = 1 + 4 * (start + cfg.vae_train_latents - 1)
    label = f"clips, latents {start}-{start + cfg.vae_train_latents - 1}"
    return crops(cfg.seed, idx, cfg.vae_frames, cfg.vae_crop)[:, :frames], start, label


def train_vae(vae, cfg: TrainConfig, clock: Clock, ranks: Ranks, device, log: Callable[[str], None]) -> int:
    """Step 1 (see the module docstring); returns the steps done."""
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    rng = np.random.default_rng([cfg.seed, 3])
    vae.train()
    step = 0
    while ranks.agree(clock.more(step)):
        pixels, start, label = _batch(cfg, ranks, step, rng)
        loss, l1 = vae_loss(vae, to_pixels(pixels, device), start)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ranks.average_grads(vae)
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 25 == 0:
            log(f"vae step {step} ({label}): L1 {l1.item():.4f}")
        step += 1
    return step


@torch.no_grad()
def cache_latents(vae, cfg: TrainConfig, ranks: Ranks, device, log) -> tuple[torch.Tensor, list[str]]:
    """Step 2: (N, 16, 5, 8, 8) normalised latents and their prompts; sets the VAE's stats.
    Each rank encodes an equal share of the clips (the last share padded with repeats)."""
    vae.eval()
    per = -(-cfg.clips // ranks.world)
    mine = [min(i, cfg.clips - 1) for i in range(ranks.rank * per, (ranks.rank + 1) * per)]
    latents = []
    for k in range(0, len(mine), 16):
        _, batch = clips(cfg.seed, mine[k:k + 16], data.FRAMES)
        latents.append(vae.encode(to_pixels(batch, device)).latent_dist.mode().cpu())
    z = ranks.gather(torch.cat(latents), cfg.clips)                       # (N, 16, 5, 8, 8)
    prompts = [data.training_scene(cfg.seed, i).prompt for i in range(cfg.clips)]
    mean = z.mean(dim=(0, 2, 3, 4))
    std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    log(f"cached {len(prompts)} clips; latent std {std.mean().item():.3f}")
    return (z - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1), prompts
