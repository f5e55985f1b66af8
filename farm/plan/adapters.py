"""Which LoRA adapters a phase runs with, and their bytes: what a worker's adapter cache
holds (farm.model.adapter_cache) and the scheduler mirrors (farm.sched.adapters) (pure).

A phase of a scene runs the scene's adapters active on the phase's expert, then the
draft's (farm.spec.film.phase_adapters): its adapter set, named by file location. The
planner is not told a file's size (reading it is I/O); the director may pass the sizes it
knows (`plan_film(adapter_bytes=...)`), and an adapter of unknown size counts as a
rank-64 LoRA of an A14B expert, the common character LoRA (`DEFAULT_LORA_BYTES`).

Size of a LoRA of rank r on a Linear(i, o): r x (i + o) parameters (A: r x i, B: o x r).
A Wan2.2 character LoRA (diffusers / musubi layout) adapts every Linear of every block:
self- and cross-attention q, k, v, out (d x d each) and the FFN (d -> ffn -> d); with d =
5120, ffn = 13824 and 40 blocks that is 4.79 M x r parameters: 307 MB at rank 32, 613 MB
at rank 64, in bf16.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from farm.spec.weights import DTYPE_BYTES, official

# (location, bytes) of each adapter of a phase, in the order the phase applies them.
AdapterSet = tuple[tuple[str, int], ...]


def lora_bytes(transformer: Mapping[str, Any], rank: int, dtype: str = "bfloat16") -> int:
    """Bytes of a rank-`rank` LoRA over every attention and FFN Linear of every block of
    a WanTransformer3DModel config (farm.spec.weights' shapes)."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    d = transformer.get("num_attention_heads", 40) * transformer.get("attention_head_dim", 128)
    ffn = transformer.get("ffn_dim", 13824)
    attn = 2 * 4 * (d + d)           # self and cross attention: q, k, v, out, d -> d
    ff = (d + ffn) + (ffn + d)       # d -> ffn, ffn -> d
    return transformer["num_layers"] * (attn + ff) * rank * DTYPE_BYTES[dtype]


DEFAULT_LORA_RANK = 64
DEFAULT_LORA_BYTES = lora_bytes(official("t2v-a14b")["transformer"], DEFAULT_LORA_RANK)
