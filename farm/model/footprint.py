"""How much one expert of a model weighs and how wide it is, read from its folder's
configs and weight files (no weights loaded, no torch) for the edge's memory check."""

from __future__ import annotations

import json

from farm.model.loader import ModelSource
from farm.spec.limits import Footprint

TINY = Footprint(weight_bytes=0, dim=24, ffn_dim=32, act_bytes=4)


def footprint(source: ModelSource, act_bytes: int = 2) -> Footprint:
    if source.path is None:
        return TINY
    if source.family == "s2v-14b":  # the official folder: WanModel_S2V at the top
        cfg = json.loads((source.path / "config.json").read_text())
        weights = sum(f.stat().st_size for f in source.path.glob("diffusion_pytorch_model*.safetensors"))
        return Footprint(weights, int(cfg["dim"]), int(cfg["ffn_dim"]), act_bytes)
    cfg = json.loads((source.path / "transformer" / "config.json").read_text())
    weights = sum(f.stat().st_size for f in (source.path / "transformer").glob("*.safetensors"))
    dim = int(cfg["num_attention_heads"]) * int(cfg["attention_head_dim"])
    return Footprint(weights, dim, int(cfg["ffn_dim"]), act_bytes)


def edge_checks(film, source: ModelSource, limits) -> list:
    """Every limit a film must meet before any work is queued (CLI and API)."""
    from farm.spec.limits import check_limits, check_memory

    errors = check_limits(film, limits)
    if not errors:  # a film far over the limits needs no memory estimate on top
        errors = check_memory(film, footprint(source), limits)
    return errors
