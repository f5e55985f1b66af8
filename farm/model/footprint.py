"""How much one expert of a model weighs and how wide it is, read from its folder's
configs and weight files (no weights loaded) for the edge's memory check; where they are
is the family's folder layout (farm.model.families)."""

from __future__ import annotations

from farm.model.families import family
from farm.model.loader import ModelSource
from farm.spec.limits import Footprint

TINY = Footprint(weight_bytes=0, dim=24, ffn_dim=32, act_bytes=4)


def footprint(source: ModelSource, act_bytes: int = 2) -> Footprint:
    if source.path is None:
        return TINY
    return family(source.family).footprint(source.path, act_bytes)


def edge_checks(film, source: ModelSource, limits) -> list:
    """Every limit a film must meet before any work is queued (CLI and API)."""
    from farm.spec.limits import check_limits, check_memory

    errors = check_limits(film, limits)
    if not errors:  # a film far over the limits needs no memory estimate on top
        errors = check_memory(film, footprint(source), limits)
    return errors
