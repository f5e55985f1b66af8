"""Train the toy model on CPU: `reelfarm models train-toy DIR [--minutes N] [--seed N]`.

    1. VAE: reconstruction on frames and long clips (farm.toy.vae_train).
    2. Cache: encode `clips` training clips (17 frames -> (16, 5, 8, 8) posterior means);
       per-channel mean / std become the VAE's latents_mean / latents_std.
    3. Experts + text encoder, flow matching (rectified flow, as Wan):
           sigma = shift(u),  x_t = (1 - sigma) x_0 + sigma eps,  target v = eps - x_0,
       t = 1000 sigma. The high-noise expert draws u so that sigma >= BOUNDARY, the low-noise
       one so that sigma < BOUNDARY: each expert learns only its own range (a timestep-routed
       MoE). Prompts are dropped (-> "") 10 % of the time, for classifier-free guidance.
    4. Save the EMA weights as a diffusers WanPipeline folder + toy_training.json.

Everything is seeded and the data order is fixed, so (seed, vae_steps, dit_steps, clips,
workers) gives the same weights; with a time budget (`minutes`) the step counts reached
are logged in toy_training.json and `--vae-steps/--dit-steps` repeat that run exactly.
`workers` processes train data-parallel (farm.toy.ranks), one thread each.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from farm.toy import model as toy
from farm.toy import ranks as rk
from farm.toy.ranks import Ranks
from farm.toy.short_text import padded_to
from farm.toy.vae_train import cache_latents, train_vae

RECORD = "toy_training.json"


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    minutes: float = 60.0          # wall-clock budget (ignored for phases given steps)
    vae_steps: int | None = None   # fixed step counts (reproducible runs, smoke tests)
    dit_steps: int | None = None
    clips: int = 3000              # cached training clips
    workers: int = 1               # data-parallel processes (one thread each)
    vae_share: float = 0.4         # fraction of `minutes` for the VAE
    vae_images: int = 8            # whole single frames per image step (every third step)
    vae_batch: int = 8             # clips per clip step
    vae_frames: int = 29           # 8 latent frames: the caches reach a long clip's state
    vae_train_latents: int = 3     # latent frames with gradients per clip step
    vae_crop: int = 32             # pixels (a multiple of 8): a quarter of a frame's cost
    vae_lr: float = 1e-3
    dit_batch: int = 32
    dit_lr: float = 5e-4
    drop_text: float = 0.1
    ema: float = 0.995
    save_every: float = 5.0        # minutes between intermediate saves (0: never)

    def problems(self) -> list[str]:
        """What is wrong with this configuration, one message per field."""
        out = []
        for name in ("vae_images", "vae_batch", "dit_batch"):
            if getattr(self, name) % self.workers:
                out.append(f"{name} ({getattr(self, name)}) must be divisible by workers ({self.workers})")
        if self.vae_crop % 8 or not 8 <= self.vae_crop <= 64:
            out.append(f"vae_crop must be a multiple of 8 in 8..64, got {self.vae_crop}")
        if self.vae_frames % 4 != 1 or (self.vae_frames - 1) // 4 + 1 < self.vae_train_latents:
            out.append(f"vae_frames must be 4k+1 with >= vae_train_latents latent frames, got {self.vae_frames}")
        return out


class Clock:
    """Stops a phase at its step count or, without one, when its time is up."""

    def __init__(self, steps: int | None, seconds: float):
        self.steps, self.deadline = steps, time.monotonic() + seconds

    def more(self, step: int) -> bool:
        if self.steps is not None:
            return step < self.steps
        return time.monotonic() < self.deadline


def _sigma_range(shift: float, lo: float, hi: float, u: torch.Tensor) -> torch.Tensor:
    """Shifted sigmas for u uniform in [0, 1) mapped to the expert's sigma range [lo, hi)."""
    inv = lambda s: s / (shift - (shift - 1.0) * s)  # noqa: E731  (inverse of the shift)
    u = inv(lo) + (inv(hi) - inv(lo)) * u
    return shift * u / (1.0 + (shift - 1.0) * u)


def flow_loss(expert, z0, emb, sigma, eps) -> torch.Tensor:
    """Step 3 for one expert: MSE between the predicted and the true velocity eps - x_0."""
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

    def step_loss(self, latents, prompts, cfg: TrainConfig, gen, ranks: Ranks, device) -> dict[str, torch.Tensor]:
        """Both experts' losses on this rank's part of one global batch each (every draw
        is of the global batch, so the ranks together compute the single-process step)."""
        losses, part = {}, ranks.part(cfg.dit_batch)
        with padded_to([self.live["high"], self.live["low"]], toy.TEXT_LEN):
            for name, (lo, hi) in {"high": (toy.BOUNDARY, 1.0), "low": (0.0, toy.BOUNDARY)}.items():
                losses[name] = self._loss(name, lo, hi, latents, prompts, cfg, gen, part, device)
        return losses

    def _loss(self, name, lo, hi, latents, prompts, cfg: TrainConfig, gen, part, device) -> torch.Tensor:
        """One expert's flow loss on this rank's `part` of a global batch drawn from `gen`;
        the text is short (farm.toy.short_text), read as the farm's 512 zero-padded tokens."""
        idx = torch.randint(len(prompts), (cfg.dit_batch,), generator=gen)
        drop = torch.rand(cfg.dit_batch, generator=gen) < cfg.drop_text
        sigma = _sigma_range(toy.SHIFT, lo, hi, torch.rand(cfg.dit_batch, generator=gen))
        eps = torch.randn((cfg.dit_batch, *latents.shape[1:]), generator=gen)
        texts = ["" if d else prompts[i] for i, d in zip(idx.tolist(), drop.tolist(), strict=True)]
        emb = toy.encode_prompts(self.tokenizer, self.live["text"], texts[part], device, short=True)
        return flow_loss(self.live[name], latents[idx[part]].to(device), emb,
                         sigma[part].to(device), eps[part].to(device))


def train_experts(experts: Experts, latents, prompts, cfg: TrainConfig, clock: Clock, ranks: Ranks,
                  device, log, save: Callable[[], None]) -> int:
    """Step 3: both experts (and the text encoder) on the cached latents; returns steps."""
    opt = torch.optim.AdamW(experts.live.parameters(), lr=cfg.dit_lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    experts.live.train()
    step, last_save, avg = 0, time.monotonic(), {}
    while ranks.agree(clock.more(step)):
        for group in opt.param_groups:  # linear warm-up over 100 steps, then constant
            group["lr"] = cfg.dit_lr * min(1.0, (step + 1) / 100)
        losses = experts.step_loss(latents, prompts, cfg, gen, ranks, device)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        ranks.average_grads(experts.live)
        torch.nn.utils.clip_grad_norm_(experts.live.parameters(), 1.0)
        opt.step()
        _ema_update(experts.ema, experts.live, step, cfg.ema)
        avg = {k: 0.98 * avg.get(k, v) + 0.02 * v for k, v in ranks.mean(losses).items()}
        if step % 25 == 0:
            log(f"dit step {step}: loss high {avg['high']:.4f} low {avg['low']:.4f}")
        step += 1
        if ranks.agree(bool(cfg.save_every) and time.monotonic() - last_save > cfg.save_every * 60):
            save()
            last_save = time.monotonic()
    return step


def _train(ranks: Ranks, directory: Path, cfg: TrainConfig, device: str, log: Callable[[str], None]) -> None:
    """Every step on one rank; rank 0 logs and writes the folder."""
    dev, t0 = torch.device(device), time.monotonic()
    log = log if ranks.rank == 0 else (lambda _m: None)
    torch.manual_seed(cfg.seed)
    tokenizer = toy.build_tokenizer()
    vae = toy.build_vae(cfg.seed).to(dev)
    vae_steps = train_vae(vae, cfg, Clock(cfg.vae_steps, cfg.minutes * 60 * cfg.vae_share), ranks, dev, log)
    latents, prompts = cache_latents(vae, cfg, ranks, dev, log)
    if ranks.rank == 0:
        vae.save_pretrained(directory / "vae")  # early, to check the reconstructions
    experts = Experts(tokenizer, toy.build_text_encoder(len(tokenizer), cfg.seed).to(dev),
                      toy.build_expert("transformer", cfg.seed).to(dev),
                      toy.build_expert("transformer_2", cfg.seed).to(dev))
    record = {"config": asdict(cfg), "vae_steps": vae_steps}

    def save() -> None:
        if ranks.rank != 0:
            return
        ema = experts.ema
        toy.save_pipeline(directory, tokenizer, ema["text"], vae, ema["high"], ema["low"])
        record["minutes"] = round((time.monotonic() - t0) / 60, 2)
        (directory / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        log(f"saved {directory} after {record['minutes']} min")

    remaining = max(0.0, cfg.minutes * 60 - (time.monotonic() - t0))
    record["dit_steps"] = train_experts(experts, latents, prompts, cfg, Clock(cfg.dit_steps, remaining),
                                        ranks, dev, log, save)
    save()


def _worker(rank: int, directory: Path, cfg: TrainConfig, device: str, store: str,
            log: Callable[[str], None], setup: Callable[[], None] | None, parent: int) -> None:
    if cfg.workers > 1:
        rk.exit_with(parent)
    if setup is not None:  # a spawned process starts with the libraries' defaults
        setup()
    ranks = rk.init(rank, cfg.workers, store)
    try:
        _train(ranks, directory, cfg, device, log)
    finally:
        rk.close(ranks)


def stamped(message: str) -> None:
    """The CLI's log line: the time, then the message (a module function: workers pickle it)."""
    print(time.strftime("%H:%M:%S"), message, flush=True)


def train_toy(directory: str | Path, cfg: TrainConfig = TrainConfig(), device: str = "cpu",
              log: Callable[[str], None] = print, setup: Callable[[], None] | None = None) -> dict:
    """Train every component and write the model folder; returns the training record.
    `log` and `setup` (run first in every process) must be module-level functions."""
    if problems := cfg.problems():
        raise ValueError("; ".join(problems))
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        store = str(Path(tmp) / "store")
        if cfg.workers == 1:
            _worker(0, out, cfg, device, store, log, None, os.getpid())
        else:
            torch.multiprocessing.spawn(_worker, args=(out, cfg, device, store, log, setup, os.getpid()),
                                        nprocs=cfg.workers)
    return json.loads((out / RECORD).read_text())
