"""Speed settings between the storyboard / resolved film and pb (for convert).

    storyboard `speed:` ("exact", {cache: ...}, {expert: ...}) <──> pb.Speed
    resolved per-expert CacheSetting ──> pb.Speed (per_expert, every expert named)

Values cross as they are: farm.spec.speed checks them (and names the field) either way.
"""

from __future__ import annotations

from typing import Any

from farm.api.protos import pb
from farm.spec.speed import EXACT, Speed


def speed_to_pb(value: Any) -> pb.Speed:
    """A schema-checked storyboard `speed:` value."""
    if isinstance(value, dict) and "cache" not in value:
        return pb.Speed(per_expert={k: _setting_to_pb(v) for k, v in value.items()})
    return pb.Speed(all=_setting_to_pb(value))


def speed_to_storyboard(s: pb.Speed) -> Any:
    """pb.Speed -> storyboard value; both forms given is passed on as one mapping, which
    farm.spec.speed rejects naming the expert keys next to `cache`."""
    per = {k: _setting_to_storyboard(v) for k, v in s.per_expert.items()}
    if not s.HasField("all"):
        return per
    one = _setting_to_storyboard(s.all)
    if not per:
        return one
    return {**(one if isinstance(one, dict) else {"cache": one}), **per}


def resolved_to_pb(speed: Speed, experts: tuple[str, ...]) -> pb.Speed | None:
    """A resolved scene's setting, every expert named; None for exact (the default)."""
    if all(s is None for s in speed):
        return None
    return pb.Speed(per_expert={e: _setting_to_pb(s.to_dict() if s is not None else EXACT)
                                for e, s in zip(experts, speed, strict=True)})


def _setting_to_pb(value: Any) -> pb.CacheSetting:
    if not isinstance(value, dict):
        return pb.CacheSetting(cache=str(value))
    params = {k: float(v) for k, v in value.items()
              if k not in ("cache", "mag_ratios") and v is not None}
    return pb.CacheSetting(cache=str(value.get("cache", "")), params=params,
                           mag_ratios=[float(x) for x in value.get("mag_ratios") or ()])


def _setting_to_storyboard(m: pb.CacheSetting) -> Any:
    if m.cache == EXACT and not m.params and not m.mag_ratios:
        return EXACT
    # doubles on the wire: whole numbers go back as ints (max_skip_steps, ...), which the
    # spec checks as it checks a storyboard's
    out: dict[str, Any] = {"cache": m.cache}
    out.update({k: int(v) if float(v).is_integer() else v for k, v in m.params.items()})
    if m.mag_ratios:
        out["mag_ratios"] = list(m.mag_ratios)
    return out

