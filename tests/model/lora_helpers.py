"""Test LoRAs for the tiny models, built offline: random low-rank weights for every
attention and feed-forward Linear of a transformer, saved the way users meet them.

- `save_diffusers`: diffusers' own writer (`WanPipeline.save_lora_weights`, keys
  `transformer.blocks.N.attn1.to_q.lora_A.weight`, the LoraConfig (rank, alpha, target
  modules) in the adapter metadata, as diffusers' training scripts save it).
- `save_wan`: the original Wan / ComfyUI layout, for test input only (keys
  `diffusion_model.blocks.N.self_attn.q.lora_down.weight`, `.alpha` per layer), which
  diffusers' `_convert_non_diffusers_wan_lora_to_diffusers` reads.
- `fuse`: W += weight * alpha / r * B @ A (diffusers' fuse_lora math), an oracle
  independent of PEFT for one forward of an expert.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q",
           "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2")
# diffusers module -> the original Wan module (what the conversion maps back).
_WAN = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
        "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
        "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o", "ffn.net.0.proj": "ffn.0",
        "ffn.net.2": "ffn.2"}

Layers = dict[str, tuple[torch.Tensor, torch.Tensor]]  # module -> (A (r, in), B (out, r))


def random_lora(transformer: torch.nn.Module, rank: int, seed: int, scale: float = 0.3) -> Layers:
    g = torch.Generator().manual_seed(seed)
    modules = dict(transformer.named_modules())
    out = {}
    for i in range(len(transformer.blocks)):
        for t in TARGETS:
            lin = modules[f"blocks.{i}.{t}"]
            a = torch.randn((rank, lin.in_features), generator=g) * scale
            b = torch.randn((lin.out_features, rank), generator=g) * scale
            out[f"blocks.{i}.{t}"] = (a, b)
    return out


def save_diffusers(folder: Path, layers: Layers, alpha: float) -> Path:
    from diffusers import WanPipeline

    rank = next(iter(layers.values()))[0].shape[0]
    sd = {}
    for module, (a, b) in layers.items():
        sd[f"{module}.lora_A.weight"], sd[f"{module}.lora_B.weight"] = a, b
    WanPipeline.save_lora_weights(folder, transformer_lora_layers=sd,
                                  transformer_lora_adapter_metadata={
                                      "r": rank, "lora_alpha": alpha,
                                      "target_modules": sorted(layers)})
    return folder


def save_wan(path: Path, layers: Layers, alpha: float) -> Path:
    sd = {}
    for module, (a, b) in layers.items():
        block, rest = module.split(".", 2)[1], module.split(".", 2)[2]
        key = f"diffusion_model.blocks.{block}.{_WAN[rest]}"
        sd[f"{key}.lora_down.weight"], sd[f"{key}.lora_up.weight"] = a, b
        sd[f"{key}.alpha"] = torch.tensor(float(alpha))
    save_file(sd, str(path))
    return path


@torch.no_grad()
def fuse(transformer: torch.nn.Module, layers: Layers, weight: float, alpha: float) -> None:
    modules = dict(transformer.named_modules())
    for module, (a, b) in layers.items():
        lin = modules[module]
        lin.weight += (weight * alpha / a.shape[0]) * (b @ a).to(lin.weight.dtype)
