"""The toy training's configuration and its step clock, shared by the training steps
(farm.toy.train, farm.toy.vae_train) without them importing each other."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    minutes: float = 60.0          # wall-clock budget (ignored for phases given steps)
    vae_steps: int | None = None   # fixed step counts (reproducible runs, smoke tests)
    dit_steps: int | None = None
    decoder_steps: int | None = None
    clips: int = 3000              # cached training clips
    workers: int = 1               # data-parallel processes (one thread each)
    vae_share: float = 0.35        # fraction of `minutes` for the VAE
    decoder_share: float = 0.15    # fraction of `minutes` for the decoder fine-tune (step 4)
    vae_images: int = 8            # whole single frames per image step
    vae_frames_every: int = 2      # every k-th VAE step is an image step (the rest: clips)
    vae_batch: int = 8             # clips per clip step
    vae_frames: int = 29           # 8 latent frames: the caches reach a long clip's state
    vae_train_latents: int = 3     # latent frames with gradients per clip step
    vae_crop: int = 32             # pixels (a multiple of 8): a quarter of a frame's cost
    vae_lr: float = 1e-3
    vae_chroma: float = 2.0        # weight of the opponent-colour L1 (vae_train.pixel_loss;
                                   # 0: RGB only)
    vae_lr_steps: float = 500.0    # lr / sqrt(1 + step / vae_lr_steps), both VAE phases
    vae_ema: float = 0.998         # step 1 keeps an EMA of its steps (the L1 of single steps
                                   # swings)
    decoder_batch: int = 4         # whole-frame clips per clip step of the decoder fine-tune
    decoder_lr: float = 1e-3
    decoder_ema: float = 0.99
    decoder_temporal: float = 5.0  # weight of the frame-change L1 in step 4
                                   # (vae_train.temporal_loss; 0: none)
    decoder_restart: bool = False  # resume only: step 4 on from the folder's decoder weights
                                   # (`recorded`)
    dit_batch: int = 32
    dit_lr: float = 5e-4
    dit_warmup: int = 100          # expert steps of linear lr warm-up (again after an expert
                                   # restart)
    dit_anneal: int = 0            # the last N expert steps decay the lr linearly to 0
                                   # (needs dit_steps)
    expert_restart: bool = False   # resume only: step 3 on from the folder's weights (`recorded`)
    drop_text: float = 0.1
    ema: float = 0.995
    save_every: float = 5.0        # minutes between intermediate saves (0: never)

    def problems(self) -> list[str]:
        """What is wrong with this configuration, one message per field."""
        out = []
        for name in ("vae_images", "vae_batch", "decoder_batch", "dit_batch"):
            if getattr(self, name) % self.workers:
                out.append(f"{name} ({getattr(self, name)}) must be divisible by "
                           f"workers ({self.workers})")
        if self.dit_anneal < 0 or (self.dit_anneal and self.dit_steps is None):
            out.append("dit_anneal must be >= 0 and needs dit_steps (the step it ends at), "
                       f"got {self.dit_anneal}")
        if self.dit_warmup < 1:
            out.append(f"dit_warmup must be >= 1, got {self.dit_warmup}")
        if self.vae_frames_every < 1:
            out.append("vae_frames_every must be >= 1 (1: image steps only), "
                       f"got {self.vae_frames_every}")
        if not self.vae_chroma >= 0:
            out.append(f"vae_chroma must be >= 0 (0: RGB L1 only), got {self.vae_chroma}")
        if not self.vae_lr_steps > 0:
            out.append(f"vae_lr_steps must be > 0, got {self.vae_lr_steps}")
        if not self.decoder_temporal >= 0:
            out.append("decoder_temporal must be >= 0 (0: no temporal term), "
                       f"got {self.decoder_temporal}")
        if not 0 <= self.vae_ema < 1:
            out.append(f"vae_ema must be in [0, 1), got {self.vae_ema}")
        if self.vae_crop % 8 or not 8 <= self.vae_crop <= 64:
            out.append(f"vae_crop must be a multiple of 8 in 8..64, got {self.vae_crop}")
        if self.vae_frames % 4 != 1 or (self.vae_frames - 1) // 4 + 1 < self.vae_train_latents:
            out.append("vae_frames must be 4k+1 with >= vae_train_latents latent frames, "
                       f"got {self.vae_frames}")
        return out


class Clock:
    """Stops a phase at its step count or, without one, when its time is up."""

    def __init__(self, steps: int | None, seconds: float):
        self.steps, self.deadline = steps, time.monotonic() + seconds

    def more(self, step: int) -> bool:
        if self.steps is not None:
            return step < self.steps
        return time.monotonic() < self.deadline
