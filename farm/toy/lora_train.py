"""Train a LoRA pair on the toy model for a named character (issue 33):
`reelfarm models train-lora BASE DIR --concept pip [--steps N] [--seed N]`.

    1. Data: `clips` clips of the character (farm.toy.data.character_scenes: prompts that
       call it by name, never a held-out one) and as many clips of the base training
       stream (farm.toy.data.clip), encoded once by BASE's VAE and normalised by its
       latents_mean / latents_std, as the experts were trained (farm.toy.train step 2).
    2. LoRA (PEFT, rank `rank`, alpha = rank) on every Linear of both experts' blocks:
       self- and cross-attention q, k, v, out and the FFN. The base weights, the text
       encoder and the VAE stay frozen: the name reads as the tokenizer's unknown token,
       so the adapters learn what that token looks like.
    3. Flow matching exactly as the toy's step 3 (farm.toy.train.flow_loss, each expert
       on its own sigma range); every batch draws half character clips and half base
       clips, so the base vocabulary is rehearsed while the name is learnt; prompts are
       dropped 10 % of the time, as in the base training (guidance's empty prompt).
    Saved: DIR/high and DIR/low (one per expert: a storyboard's Wan2.2 pair,
    `{name: DIR/high, high: 1}` and `{name: DIR/low, low: 1}`), each a
    pytorch_lora_weights.safetensors as diffusers' save_lora_weights writes it, and
    DIR/lora_training.json (the configuration, the steps, the minutes).

Seeded (the adapters' init, the data and every draw), one process on one thread, so the
same configuration gives the same tensors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from farm.toy import WEIGHTS, data
from farm.toy import model as toy
from farm.toy.short_text import padded_to
from farm.toy.train import EXPERT_SIGMAS, _sigma_range, flow_loss
from farm.toy.vae_train import to_pixels

RECORD = "lora_training.json"
LORA_FILE = "pytorch_lora_weights.safetensors"  # what diffusers' save_lora_weights names it
# The Linear layers of a Wan block (diffusers' names): attention in and out, the FFN.
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "net.0.proj", "net.2"]


@dataclass(frozen=True)
class LoraConfig:
    concept: str = "pip"
    seed: int = 0
    steps: int = 400
    rank: int = 8
    lr: float = 1e-3
    warmup: int = 20
    batch: int = 32             # half character clips, half base clips
    clips: int = 128            # character clips cached (and as many base clips)
    drop_text: float = 0.1

    def problems(self) -> list[str]:
        """What is wrong with this configuration, one message per field."""
        out = []
        if self.concept not in data.CHARACTERS:
            out.append(f"concept must be one of {', '.join(data.CHARACTERS)}, "
                       f"got {self.concept!r}")
        for name in ("steps", "rank", "warmup", "clips"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch < 2 or self.batch % 2:
            out.append(f"batch must be even and >= 2 (half character clips), got {self.batch}")
        if self.seed < 0:
            out.append(f"seed must be >= 0, got {self.seed}")
        if not self.lr > 0:
            out.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.drop_text < 1:
            out.append(f"drop_text must be in [0, 1), got {self.drop_text}")
        return out


def cache(vae, cfg: LoraConfig) -> dict[str, tuple[torch.Tensor, list[str]]]:
    """Step 1: {"concept" | "base": ((N, 16, 5, 8, 8) normalised latents, prompts)}."""
    from farm.model.condition import encode_latents

    concept = data.character_scenes(cfg.seed, cfg.concept, cfg.clips, held_out=False)
    base = [data.training_scene(cfg.seed, i) for i in range(cfg.clips)]
    out = {}
    with torch.no_grad():
        for key, scenes in (("concept", concept), ("base", base)):
            z = [encode_latents(vae, to_pixels(np.stack([data.render(s) for s in part]),
                                               torch.device("cpu")))
                 for part in (scenes[k:k + 16] for k in range(0, len(scenes), 16))]
            out[key] = (torch.cat(z), [s.prompt for s in scenes])
    return out


def with_adapters(expert, cfg: LoraConfig):
    """Step 2: the expert frozen, PEFT LoRA layers added (seeded init), trainable."""
    from peft import LoraConfig as PeftLora

    expert.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    expert.add_adapter(PeftLora(r=cfg.rank, lora_alpha=cfg.rank, target_modules=TARGETS,
                                init_lora_weights=True))
    return expert


def batch_prompts(cached, cfg: LoraConfig, gen: torch.Generator):
    """One batch: half character, half base clips; (latents, prompts with drops)."""
    half, zs, texts = cfg.batch // 2, [], []
    for key in ("concept", "base"):
        z, prompts = cached[key]
        idx = torch.randint(len(prompts), (half,), generator=gen)
        zs.append(z[idx])
        texts += [prompts[i] for i in idx.tolist()]
    drop = torch.rand(cfg.batch, generator=gen) < cfg.drop_text
    texts = ["" if d else t for t, d in zip(texts, drop.tolist(), strict=True)]
    return torch.cat(zs), texts


def step_losses(experts: dict, tokenizer, text, cached, cfg: LoraConfig,
                gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Step 3: each expert's flow loss on its own batch and sigma range."""
    losses, cpu = {}, torch.device("cpu")
    for name, (lo, hi) in EXPERT_SIGMAS.items():
        z0, texts = batch_prompts(cached, cfg, gen)
        sigma = _sigma_range(toy.SHIFT, lo, hi, torch.rand(cfg.batch, generator=gen))
        eps = torch.randn(z0.shape, generator=gen)
        with torch.no_grad():
            emb = toy.encode_prompts(tokenizer, text, texts, cpu, short=True)
        losses[name] = flow_loss(experts[name], z0, emb, sigma, eps)
    return losses


def save_pair(directory: Path, experts: dict, cfg: LoraConfig) -> None:
    """Each expert's adapters as diffusers saves a Wan LoRA (keys `transformer.`, alpha)."""
    from diffusers import WanPipeline
    from peft.utils import get_peft_model_state_dict

    meta = {"r": cfg.rank, "lora_alpha": cfg.rank, "target_modules": sorted(TARGETS)}
    for name, expert in experts.items():
        layers = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(expert).items()}
        WanPipeline.save_lora_weights(directory / name, transformer_lora_layers=layers,
                                      transformer_lora_adapter_metadata=meta)


def train_lora(base: str | Path, directory: str | Path, cfg: LoraConfig = LoraConfig(),
               log: Callable[[str], None] = print) -> dict:
    """Train the pair on the toy model folder `base` and write it to `directory`;
    returns the record (also DIR/lora_training.json). ValueError for a bad cfg."""
    if problems := cfg.problems():
        raise ValueError("; ".join(problems))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums on every machine; the toy's tensors are too
    try:                      # small for intra-op threads (on shared cores they cost)
        return _train(base, Path(directory), cfg, log)
    finally:
        torch.set_num_threads(threads)


def _train(base: str | Path, out: Path, cfg: LoraConfig, log: Callable[[str], None]) -> dict:
    t0 = time.monotonic()
    text, vae, high, low = toy.load_pipeline(base)
    tokenizer = toy.build_tokenizer()
    cached = cache(vae, cfg)
    log(f"cached {cfg.clips} {cfg.concept} clips and {cfg.clips} base clips")
    experts = {"high": with_adapters(high, cfg), "low": with_adapters(low, cfg)}
    params = [p for e in experts.values() for p in e.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    for e in experts.values():
        e.train()
    avg: dict[str, float] = {}
    with padded_to(list(experts.values()), toy.TEXT_LEN):
        for step in range(cfg.steps):
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
            losses = step_losses(experts, tokenizer, text, cached, cfg, gen)
            opt.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            avg = {k: 0.95 * avg.get(k, v.item()) + 0.05 * v.item() for k, v in losses.items()}
            if step % 25 == 0 or step == cfg.steps - 1:
                log(f"lora step {step}: loss high {avg['high']:.4f} low {avg['low']:.4f}")
    out.mkdir(parents=True, exist_ok=True)
    save_pair(out, experts, cfg)
    shipped = Path(base).resolve() == WEIGHTS  # the record names the model, not a path
    record = {"config": asdict(cfg), "base": "toy" if shipped else str(base),
              "minutes": round((time.monotonic() - t0) / 60, 2)}
    (out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return record
