"""Steps 1-2 of the toy training: the VAE (AutoencoderKLWan) and the cached latents.

    1. Reconstruction: a deterministic autoencoder on the posterior mean, L1 weighted on
       the shapes plus an L1 on the opponent colour differences (`vae_loss`: an RGB L1 alone
       teaches brightness long before hue). Every `vae_frames_every`-th step is whole
       single frames (the causal VAE's first-frame path, and the backgrounds and frame
       borders as they are); the others are clips cut to crops around the shape (a
       quarter of a frame's cost) run through both causal caches, with gradients on a few
       latent frames at a seeded position (`rollout`), so the video path (its own temporal
       convolutions) is trained at every position a long clip reaches. The lr decays as
       1 / sqrt(1 + step / vae_lr_steps) and the weights kept are an EMA of the steps (both
       counted in steps, so a run repeats step for step whatever the clock did).
    2. Cache: the training clips encoded once (posterior means); their per-channel mean and
       std become the VAE's latents_mean / latents_std, so the experts see unit latents.
    4. Decoder (after the experts, farm.toy.train step 4): the decoder alone, the encoder
       frozen, so the cached latents and the experts trained on them stay valid; clips are
       whole frames (colours and backgrounds of the frames the farm decodes, not crops),
       the same loss plus `temporal_loss` on the clips (a decoder trained frame by frame
       flickers, most where one latent frame's four frames meet the next's), the same lr
       decay and EMA."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from farm.toy import data
from farm.toy.config import Clock, TrainConfig
from farm.toy.ranks import Ranks


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
        ox, oy = (int(np.clip(8 * round((m - crop / 2 + rng.uniform(-8, 8)) / 8), 0,
                              data.SIZE - crop))
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


def pixel_loss(recon: torch.Tensor, x: torch.Tensor, chroma: float) -> torch.Tensor:
    """L1 of recon - x (B, 3, F, H, W) weighted x5 on the shapes (pixels far from their
    row's median), plus `chroma` x the L1 of the two opponent colour differences
    (R - G, (R + G) / 2 - B) of the error. The chroma term is there because an RGB L1 is
    mostly brightness: without it the VAE learns brightness first and hue last (its early
    shapes and backgrounds decode grey)."""
    fg = (x - x.median(dim=-1, keepdim=True).values).abs().amax(1, keepdim=True) > 0.1
    weight = 1.0 + 4.0 * fg
    d = recon - x
    opponent = torch.stack([d[:, 0] - d[:, 1], 0.5 * (d[:, 0] + d[:, 1]) - d[:, 2]], 1)
    return (d.abs() * weight).mean() + chroma * (opponent.abs() * weight).mean()


def temporal_loss(recon: torch.Tensor, x: torch.Tensor, first: int) -> torch.Tensor:
    """L1 of the frame-to-frame change of recon vs x (B, 3, F, H, W; frame 0 is pixel frame
    `first` of the clip): flicker costs, motion the data has does not. A pair of frames
    decoded from two latent frames (4l -> 4l + 1) weighs 4x, since that is where a
    decoder jumps (without this term: frame changes 2-3x the data's there, and a seam
    ratio of 1.22 at the window edges of the VAE's own round trip; the shipped decoder,
    1000 steps with it: 0.99):

        pixel frame   0 | 1  2  3  4 | 5  6  7  8 | 9 ...
        pair weight    4  1  1  1  4  1  1  1  4        (0 for a single frame)
    """
    if x.shape[2] < 2:
        return x.new_zeros(())
    pair = torch.arange(first, first + x.shape[2] - 1, device=x.device)    # pair f: f -> f + 1
    weight = (1.0 + 3.0 * (pair % 4 == 0).to(x.dtype)).view(1, 1, -1, 1, 1)
    return ((recon.diff(dim=2) - x.diff(dim=2)).abs() * weight).mean()


def vae_loss(vae, x: torch.Tensor, train_from: int = 0, chroma: float = 0.0,
             temporal: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, plain L1) of one batch (B, 3, F, H, W): `pixel_loss`, `temporal` x
    `temporal_loss` and a small L2 on the latent to bound its scale. A deterministic
    autoencoder on the posterior mean: sampling the untrained posterior drowns the latent
    in noise."""
    recon, z = rollout(vae, x, train_from)
    first = 0 if train_from == 0 else 1 + 4 * (train_from - 1)
    x = x[:, :, first:first + recon.shape[2]]
    loss = pixel_loss(recon, x, chroma) + 1e-4 * z.pow(2).mean()
    if temporal:
        loss = loss + temporal * temporal_loss(recon, x, first)
    return loss, (recon - x).abs().mean()


def _batch(cfg: TrainConfig, ranks: Ranks, step: int, rng: np.random.Generator,
           decoder: bool = False):
    """(pixels of this rank's part, train_from, label) of VAE step `step` (step 1, or
    step 4 with `decoder`: its own clips, whole frames, `decoder_batch` of them)."""
    batch, crop = (cfg.decoder_batch, data.SIZE) if decoder else (cfg.vae_batch, cfg.vae_crop)
    # streams apart from the cached clips and from each other
    first = ((1 << 21) + step * max(cfg.vae_images, batch) if decoder
             else (1 << 20) + step * cfg.vae_images)
    if step % cfg.vae_frames_every == 0:
        idx = range(first, first + cfg.vae_images)[ranks.part(cfg.vae_images)]
        return crops(cfg.seed, idx, 1, data.SIZE), 0, "frames"
    latents = 1 + (cfg.vae_frames - 1) // 4
    start = int(rng.integers(0, latents - cfg.vae_train_latents + 1))
    idx = range(first, first + batch)[ranks.part(batch)]
    frames = 1 + 4 * (start + cfg.vae_train_latents - 1)
    label = f"clips, latents {start}-{start + cfg.vae_train_latents - 1}"
    return crops(cfg.seed, idx, cfg.vae_frames, crop)[:, :frames], start, label


def ema_update(ema: torch.nn.Module, live: torch.nn.Module, step: int, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * live, the decay ramped up over the first steps."""
    d = min(decay, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), live.parameters(), strict=True):
            e.lerp_(p, 1.0 - d)


def train_vae(vae, cfg: TrainConfig, clock: Clock, ranks: Ranks, device, log: Callable[[str], None],
              decoder: bool = False, state: dict | None = None,
              keep: Callable[[dict], None] | None = None, start: int = 0) -> int:
    """Step 1, or step 4 with `decoder` (see the module docstring); returns the steps done
    in all. `keep` gets the phase's whole state at its end (weights live and EMA, AdamW
    moments, both random streams, the step); `state` continues from one, step for step.
    Without one, `start` > 0 continues from the weights alone (`decoder_restart`): the
    step count, lr decay and clip stream go on, the moments, EMA and streams start anew."""
    if decoder:
        torch.manual_seed(cfg.seed + 4)  # the phase's own stream, whatever ran before it
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)
    live = torch.nn.ModuleList([vae.decoder, vae.post_quant_conv]) if decoder else vae
    ema = copy.deepcopy(live).requires_grad_(False)
    lr, decay = (cfg.decoder_lr, cfg.decoder_ema) if decoder else (cfg.vae_lr, cfg.vae_ema)
    opt = torch.optim.AdamW(live.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng([cfg.seed, 5 if decoder else 3])
    step = _restore(state, live, ema, opt, rng) if state else start
    vae.train()
    while ranks.agree(clock.more(step)):
        # lr / sqrt(1 + step / vae_lr_steps): counted in steps, not time
        for group in opt.param_groups:
            group["lr"] = lr / (1.0 + step / cfg.vae_lr_steps) ** 0.5
        pixels, train_from, label = _batch(cfg, ranks, step, rng, decoder)
        loss, l1 = vae_loss(vae, to_pixels(pixels, device), train_from, cfg.vae_chroma,
                            cfg.decoder_temporal if decoder else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ranks.average_grads(live)
        torch.nn.utils.clip_grad_norm_(live.parameters(), 1.0)
        opt.step()
        ema_update(ema, live, step, decay)
        if step % 25 == 0:
            log(f"{'decoder' if decoder else 'vae'} step {step} ({label}): L1 {l1.item():.4f}")
        step += 1
    if keep is not None:
        keep(phase_state(step, live, ema, opt, rng=rng.bit_generator.state,
                         torch_rng=torch.get_rng_state()))
    live.load_state_dict(ema.state_dict())
    vae.eval().requires_grad_(True)
    return step


def _restore(state: dict, live, ema, opt, rng: np.random.Generator) -> int:
    """Load a `train_vae` state into the phase's modules, optimizer and streams; its step."""
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    return load_phase(state, live, ema, opt)


def phase_state(step: int, live, ema, opt, **streams) -> dict:
    """What a training phase continues from: its step, weights (live and EMA), AdamW
    moments and its random `streams` (steps 3 and 4 save one; farm.toy.train)."""
    return {"step": step, "live": live.state_dict(), "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            **streams}


def load_phase(state: dict, live, ema, opt) -> int:
    """The inverse of `phase_state` for the weights and moments; returns the step."""
    live.load_state_dict(state["live"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    return state["step"]


@torch.no_grad()
def cache_latents(vae, cfg: TrainConfig, ranks: Ranks, device,
                  log) -> tuple[torch.Tensor, list[str]]:
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
