"""Train the toy model on CPU: `reelfarm models train-toy DIR [--minutes N] [--seed N]`.

    1. VAE: reconstruction (L1, foreground-weighted) on single frames, then short clips.
    2. Cache: encode `clips` training clips (17 frames -> (16, 5, 8, 8) posterior means);
       per-channel mean / std become the VAE's latents_mean / latents_std.
    3. Experts + text encoder, flow matching (rectified flow, as Wan):
           sigma = shift(u),  x_t = (1 - sigma) x_0 + sigma eps,  target v = eps - x_0,
       t = 1000 sigma. The high-noise expert draws u so that sigma >= BOUNDARY, the low-noise
       one so that sigma < BOUNDARY: each expert learns only its own range (a timestep-routed
       MoE). Prompts are dropped (-> "") 10 % of the time, for classifier-free guidance.
    4. Save the EMA weights as a diffusers WanPipeline folder + toy_training.json.

Everything is seeded and the data order is fixed, so (seed, vae_steps, dit_steps, clips)
gives the same weights; with a time budget (`minutes`) the step counts reached are logged
in toy_training.json and `--vae-steps/--dit-steps` repeat that run exactly.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from farm.toy import data
from farm.toy import model as toy


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    minutes: float = 40.0          # wall-clock budget (ignored for phases given steps)
    vae_steps: int | None = None   # fixed step counts (reproducible runs, smoke tests)
    dit_steps: int | None = None
    clips: int = 3000              # cached training clips
    vae_share: float = 0.25        # fraction of `minutes` for the VAE
    vae_batch: int = 4
    vae_frames: int = 5            # 2 latent frames: the causal cache is exercised
    vae_lr: float = 3e-4
    dit_batch: int = 32
    dit_lr: float = 3e-4
    drop_text: float = 0.1
    ema: float = 0.995
    save_every: float = 5.0        # minutes between intermediate saves (0: never)


def to_pixels(clips: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, F, H, W, 3) uint8 -> (B, 3, F, H, W) float in [-1, 1]."""
    x = torch.from_numpy(clips).to(device).permute(0, 4, 1, 2, 3).float()
    return x / 127.5 - 1.0


def _clips(seed: int, indices, frames: int) -> tuple[list[str], np.ndarray]:
    scenes = [data.training_scene(seed, int(i)) for i in indices]
    return [s.prompt for s in scenes], np.stack([data.render(s, frames) for s in scenes])


class _Clock:
    """Stops a phase at its step count or, without one, when its time is up."""

    def __init__(self, steps: int | None, seconds: float):
        self.steps, self.deadline = steps, time.monotonic() + seconds

    def more(self, step: int) -> bool:
        if self.steps is not None:
            return step < self.steps
        return time.monotonic() < self.deadline


def decode_unclamped(vae, z: torch.Tensor) -> torch.Tensor:
    """AutoencoderKLWan's causal decode, one latent frame at a time with its feature cache,
    without the final clamp to [-1, 1] (which would stop the gradient of saturated pixels)."""
    vae.clear_cache()
    x = vae.post_quant_conv(z)
    frames = []
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        frames.append(vae.decoder(x[:, :, i:i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                  first_chunk=i == 0))
    vae.clear_cache()
    return torch.cat(frames, dim=2)


def vae_loss(vae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, plain L1) of one batch (B, 3, F, 64, 64): a deterministic autoencoder on the
    posterior mean (sampling the untrained posterior drowns the latent in noise), L1
    weighted x5 on the shapes (~5 % of a frame: pixels far from their row's median), and
    a small L2 on the latent to keep its scale bounded."""
    z = vae.encode(x).latent_dist.mean                                    # (B, 16, F', 8, 8)
    recon = decode_unclamped(vae, z)
    fg = (x - x.median(dim=-1, keepdim=True).values).abs().amax(1, keepdim=True) > 0.1
    err = (recon - x).abs()
    return (err * (1.0 + 4.0 * fg)).mean() + 1e-4 * z.pow(2).mean(), err.mean()


def train_vae(vae, cfg: TrainConfig, clock: _Clock, device, log: Callable[[str], None]) -> int:
    """Step 1: reconstruction training; returns the steps done. Two steps in three are single
    frames (batches of 4 x vae_batch: the causal VAE's first-frame path, cheap), every third
    clips of vae_frames frames (the 4-frame chunks and the temporal cache)."""
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    vae.train()
    step = 0
    while clock.more(step):
        images = step % 3 != 2
        batch, frames = (4 * cfg.vae_batch, 1) if images else (cfg.vae_batch, cfg.vae_frames)
        first = (1 << 20) + step * 4 * cfg.vae_batch  # a stream apart from the cached clips
        _, clips = _clips(cfg.seed, range(first, first + batch), frames)
        loss, l1 = vae_loss(vae, to_pixels(clips, device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 25 == 0:
            log(f"vae step {step} ({'images' if images else f'{frames}-frame clips'}): L1 {l1.item():.4f}")
        step += 1
    return step


@torch.no_grad()
def cache_latents(vae, cfg: TrainConfig, device, log) -> tuple[torch.Tensor, list[str]]:
    """Step 2: (N, 16, 5, 8, 8) normalised latents and their prompts; sets the VAE's stats."""
    vae.eval()
    prompts, latents = [], []
    for first in range(0, cfg.clips, 16):
        p, clips = _clips(cfg.seed, range(first, min(first + 16, cfg.clips)), data.FRAMES)
        latents.append(vae.encode(to_pixels(clips, device)).latent_dist.mode().cpu())
        prompts += p
    z = torch.cat(latents)                                                # (N, 16, 5, 8, 8)
    mean = z.mean(dim=(0, 2, 3, 4))
    std = z.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    log(f"cached {len(prompts)} clips; latent std {std.mean().item():.3f}")
    return (z - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1), prompts


def _sigma_range(shift: float, lo: float, hi: float, u: torch.Tensor) -> torch.Tensor:
    """Shifted sigmas for u uniform in [0, 1) mapped to the expert's sigma range [lo, hi)."""
    inv = lambda s: s / (shift - (shift - 1.0) * s)  # noqa: E731  (inverse of the shift)
    u = inv(lo) + (inv(hi) - inv(lo)) * u
    return shift * u / (1.0 + (shift - 1.0) * u)


def flow_loss(expert, z0, emb, sigma, gen, device) -> torch.Tensor:
    """Step 3 for one expert: MSE between the predicted and the true velocity eps - x_0."""
    eps = torch.randn(z0.shape, generator=gen).to(device)
    s = sigma.view(-1, 1, 1, 1, 1)
    xt = (1.0 - s) * z0 + s * eps                                         # (B, 16, 5, 8, 8)
    pred = expert(xt, sigma * 1000.0, emb, return_dict=False)[0]
    return (pred - (eps - z0)).pow(2).mean()


def _ema_update(ema: torch.nn.Module, live: torch.nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), live.parameters(), strict=True):
            e.lerp_(p, 1.0 - d)


class Experts:
    """The two experts and the text encoder they share, with EMA copies."""

    def __init__(self, tokenizer, text_encoder, high, low):
        self.tokenizer = tokenizer
        self.live = torch.nn.ModuleDict({"text": text_encoder, "high": high, "low": low})
        self.ema = copy.deepcopy(self.live).eval().requires_grad_(False)

    def step_loss(self, latents, prompts, cfg: TrainConfig, gen, device) -> dict[str, torch.Tensor]:
        losses = {}
        for name, (lo, hi) in {"high": (toy.BOUNDARY, 1.0), "low": (0.0, toy.BOUNDARY)}.items():
            idx = torch.randint(len(prompts), (cfg.dit_batch,), generator=gen)
            drop = torch.rand(cfg.dit_batch, generator=gen) < cfg.drop_text
            texts = ["" if d else prompts[i] for i, d in zip(idx.tolist(), drop.tolist(), strict=True)]
            emb = toy.encode_prompts(self.tokenizer, self.live["text"], texts, device)
            sigma = _sigma_range(toy.SHIFT, lo, hi, torch.rand(cfg.dit_batch, generator=gen)).to(device)
            losses[name] = flow_loss(self.live[name], latents[idx].to(device), emb, sigma, gen, device)
        return losses


def train_experts(experts: Experts, latents, prompts, cfg: TrainConfig, clock: _Clock, device,
                  log, save: Callable[[], None]) -> int:
    """Step 3: both experts (and the text encoder) on the cached latents; returns steps."""
    opt = torch.optim.AdamW(experts.live.parameters(), lr=cfg.dit_lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    experts.live.train()
    step, last_save, avg = 0, time.monotonic(), {}
    while clock.more(step):
        for group in opt.param_groups:  # linear warm-up over 100 steps, then constant
            group["lr"] = cfg.dit_lr * min(1.0, (step + 1) / 100)
        losses = experts.step_loss(latents, prompts, cfg, gen, device)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(experts.live.parameters(), 1.0)
        opt.step()
        _ema_update(experts.ema, experts.live, step, cfg.ema)
        avg = {k: 0.98 * avg.get(k, v.item()) + 0.02 * v.item() for k, v in losses.items()}
        if step % 25 == 0:
            log(f"dit step {step}: loss high {avg['high']:.4f} low {avg['low']:.4f}")
        step += 1
        if cfg.save_every and time.monotonic() - last_save > cfg.save_every * 60:
            save()
            last_save = time.monotonic()
    return step


def train_toy(directory: str | Path, cfg: TrainConfig = TrainConfig(), device: str = "cpu",
              log: Callable[[str], None] = print) -> dict:
    """Train every component and write the model folder; returns the training record."""
    dev, t0 = torch.device(device), time.monotonic()
    torch.manual_seed(cfg.seed)
    tokenizer = toy.build_tokenizer()
    vae = toy.build_vae(cfg.seed).to(dev)
    vae_steps = train_vae(vae, cfg, _Clock(cfg.vae_steps, cfg.minutes * 60 * cfg.vae_share), dev, log)
    latents, prompts = cache_latents(vae, cfg, dev, log)
    vae.save_pretrained(Path(directory) / "vae")  # early, to check the reconstructions
    experts = Experts(tokenizer, toy.build_text_encoder(len(tokenizer), cfg.seed).to(dev),
                      toy.build_expert("transformer", cfg.seed).to(dev),
                      toy.build_expert("transformer_2", cfg.seed).to(dev))
    record = {"config": asdict(cfg), "vae_steps": vae_steps}

    def save() -> None:
        ema = experts.ema
        toy.save_pipeline(directory, tokenizer, ema["text"], vae, ema["high"], ema["low"])
        record["minutes"] = round((time.monotonic() - t0) / 60, 2)
        (Path(directory) / "toy_training.json").write_text(json.dumps(record, indent=1) + "\n")
        log(f"saved {directory} after {record['minutes']} min")

    remaining = max(0.0, cfg.minutes * 60 - (time.monotonic() - t0))
    record["dit_steps"] = train_experts(experts, latents, prompts, cfg, _Clock(cfg.dit_steps, remaining),
                                        dev, log, save)
    save()
    return record
