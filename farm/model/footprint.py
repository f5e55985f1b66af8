"""How much a model's parts weigh and how wide its experts are, read from its folder's
configs (no weights loaded; farm.spec.weights counts them) for the edge's memory check and
the pool layout check; where the configs are is the family's folder layout
(farm.model.families)."""

from __future__ import annotations

from farm.model.families import family
from farm.model.loader import ModelSource
from farm.spec.limits import Footprint
from farm.spec.weights import pool_bytes

TINY = Footprint(weight_bytes=0, dim=24, ffn_dim=32, act_bytes=4)


def footprint(source: ModelSource, act_bytes: int = 2) -> Footprint:
    if source.path is None:
        return TINY
    return family(source.family).footprint(source.path, act_bytes)


def pool_weight_bytes(source: ModelSource, holds: list[str], dtype: str = "bfloat16",
                      vae_dtype: str = "float32", offload: str = "none") -> int:
    """Device bytes of the weights a replica holding `holds` of `source` keeps while it
    runs (farm.spec.weights.pool_bytes); 0 for the models built in memory (kilobytes)."""
    if source.path is None:
        return 0
    configs = family(source.family).component_configs(source.path)
    return pool_bytes(configs, holds, dtype, vae_dtype, offload)


def edge_checks(film, source: ModelSource, limits) -> list:
    """Every limit a film must meet before any work is queued (CLI and API), and its
    LoRA adapters read and fitted to the model (farm.model.adapters)."""
    from farm.model.adapters import adapter_checks
    from farm.spec.limits import check_limits, check_memory

    errors = check_limits(film, limits)
    if not errors:  # a film far over the limits needs no memory estimate on top
        errors = check_memory(film, footprint(source), limits)
    return errors + adapter_checks(film, source)
