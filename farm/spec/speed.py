"""Speed settings: the storyboard's `speed:` (pure).

    speed: exact                                         the default: today's contract
    speed: {cache: first-block, threshold: 0.08}         every expert, one step cache
    speed: {high: exact, low: {cache: taylorseer}}       per expert (unnamed: exact)

On the film (every scene) and per scene (replaces the film's). A cache reuses a step's
transformer work when the input barely changed: diffusers' own hooks
(`transformer.enable_cache(...)`, farm.model.speed) for

    first-block   FirstBlockCacheConfig: skip the other blocks when the first block's
                  residual changed less than `threshold` (relative)
    magcache      MagCacheConfig: skip while the accumulated magnitude error stays under
                  `threshold`; `mag_ratios` are the model's (calibrated per checkpoint)
    taylorseer    TaylorSeerCacheConfig (lite: the blocks skipped, the output predicted
                  by a Taylor series): full steps every `cache_interval`

A cache's state lives for one phase (steps of one expert on one segment): see
farm.model.speed. Values out of range are errors naming the field; nothing is clamped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farm.spec.errors import FieldError

EXACT = "exact"


@dataclass(frozen=True, slots=True)
class Param:
    """One setting of a cache: its kind, bounds and default (None: required)."""

    kind: str  # "float", "int", "ratios" or "int?" (an int or null)
    low: float
    high: float | None
    default: Any
    # True: `low` itself is not allowed (a threshold of 0 would never skip).
    open_low: bool = False


CACHES: dict[str, dict[str, Param]] = {
    "first-block": {"threshold": Param("float", 0.0, 1.0, 0.05, open_low=True)},
    "magcache": {
        "threshold": Param("float", 0.0, 1.0, 0.06, open_low=True),
        "max_skip_steps": Param("int", 1, 1000, 3),
        "retention_ratio": Param("float", 0.0, 1.0, 0.2),
        "mag_ratios": Param("ratios", 0.0, None, None, open_low=True),
    },
    "taylorseer": {
        "cache_interval": Param("int", 1, 1000, 5),
        "disable_cache_before_step": Param("int", 0, 1000, 3),
        "disable_cache_after_step": Param("int?", 0, 1000, None),
        "max_order": Param("int", 0, 4, 1),
    },
}


@dataclass(frozen=True, slots=True)
class CacheSetting:
    """A resolved cache: its name and every setting (defaults filled), sorted by name."""

    cache: str
    params: tuple[tuple[str, Any], ...]

    def get(self, name: str) -> Any:
        return dict(self.params)[name]

    def label(self) -> str:
        """How logs and manifests name it: `first-block(threshold=0.08)`."""
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.params if v is not None)
        return f"{self.cache}({shown})"

    def to_dict(self) -> dict[str, Any]:
        return {"cache": self.cache, **{k: list(v) if isinstance(v, tuple) else v
                                        for k, v in self.params}}


# Per expert, in profile.experts order; None: that expert runs exact.
Speed = tuple[CacheSetting | None, ...]


def resolve_speed(at: str, value: Any,
                  experts: tuple[str, ...]) -> tuple[Speed | None, list[FieldError]]:
    """The setting at field `at` (None if not given) per expert, or the errors."""
    if value is None:
        return None, []
    if value == EXACT:
        return tuple(None for _ in experts), []
    if not isinstance(value, Mapping) or not value:
        return None, [FieldError(at, _usage(experts, f"got {value!r}"))]
    if "cache" not in value and set(value) <= set(experts):
        out, errors = [], []
        for name in experts:
            one, e = _one(f"{at}.{name}", value.get(name, EXACT))
            out.append(one)
            errors += e
        return tuple(out), errors
    if "cache" not in value:
        unknown = sorted(set(value) - set(experts))
        return None, [FieldError(f"{at}.{unknown[0]}", _usage(
            experts, f"{unknown[0]!r} is neither `cache` nor an expert"))]
    one, errors = _one(at, value)
    return tuple(one for _ in experts), errors


def speed_record(speed: Speed, experts: tuple[str, ...]) -> dict[str, Any] | str:
    """The setting as manifests record it: "exact", or per expert "exact" or every value."""
    if all(s is None for s in speed):
        return EXACT
    return {e: s.to_dict() if s is not None else EXACT
            for e, s in zip(experts, speed, strict=True)}


def _one(at: str, value: Any) -> tuple[CacheSetting | None, list[FieldError]]:
    if value == EXACT:
        return None, []
    if not isinstance(value, Mapping) or "cache" not in value:
        return None, [FieldError(at, f"must be 'exact' or {{cache: NAME, ...}} with NAME one of "
                                     f"{', '.join(CACHES)}; got {value!r}")]
    name = value["cache"]
    if name not in CACHES:
        return None, [FieldError(f"{at}.cache", f"must be one of {', '.join(CACHES)} "
                                                f"(or the whole setting 'exact'); got {name!r}")]
    table, errors, params = CACHES[name], [], []
    for key in sorted(set(value) - {"cache"} - set(table)):
        errors.append(FieldError(f"{at}.{key}", f"not a setting of {name}; its settings: "
                                                f"{', '.join(table)}"))
    for key, p in sorted(table.items()):
        got, e = _param(f"{at}.{key}", name, p, value.get(key, p.default), key in value)
        errors += e
        params.append((key, got))
    return (CacheSetting(name, tuple(params)) if not errors else None), errors


def _param(at: str, cache: str, p: Param, v: Any, given: bool) -> tuple[Any, list[FieldError]]:
    if v is None and p.kind == "ratios":
        return None, [FieldError(at, f"{cache} needs the model's magnitude ratios (one per "
                                     "step, from a calibration run; see docs/storyboard.md)")]
    if v is None and p.kind == "int?":
        return None, []
    if p.kind == "ratios":
        if not isinstance(v, list | tuple) or not v or not all(_number(x) for x in v):
            return None, [FieldError(at, f"must be a list of positive numbers; got {v!r}")]
        bad = [x for x in v if x <= 0]
        return tuple(float(x) for x in v), ([FieldError(at, f"must be positive; got {bad[0]}")]
                                            if bad else [])
    want_int = p.kind in ("int", "int?")
    if not _number(v) or (want_int and not float(v).is_integer()):
        kind = "an integer" if want_int else "a number"
        return None, [FieldError(at, f"must be {kind}; got {v!r}")]
    low_ok = v > p.low if p.open_low else v >= p.low
    if not low_ok or (p.high is not None and v > p.high):
        lo = f"more than {p.low}" if p.open_low else f"at least {p.low}"
        hi = f" and at most {p.high}" if p.high is not None else ""
        return None, [FieldError(at, f"must be {lo}{hi}; got {v}")]
    return (int(v) if want_int else float(v)), []


def _number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v))


def _short(v: Any) -> str:
    if isinstance(v, tuple):
        return f"[{len(v)} values]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _usage(experts: tuple[str, ...], got: str) -> str:
    per = ", ".join(f"{e}: ..." for e in experts)
    return (f"must be 'exact', {{cache: NAME, ...}} (NAME one of {', '.join(CACHES)}) "
            f"or per expert {{{per}}}; {got}")
