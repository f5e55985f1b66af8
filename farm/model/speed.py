"""Step caches on a resident expert: diffusers' own hooks, scoped to one phase.

A phase (steps [i, j) of one expert on one segment) runs with its scene's cache
(farm.spec.speed) through `transformer.enable_cache(config)` and diffusers' cache hooks,
unchanged. What the farm adds is scope:

- Per phase. Hook state is keyed by the cache context's name; every phase member calls
  its expert under names of its own (`<task>/<segment>:cond|uncond`), so phases running
  at once (a gang of windows in one thread, a worker's slots) never read each other's
  residuals, and a phase's state is dropped when it ends (done, failed or abandoned). A
  retried phase therefore starts its cache afresh, as a first attempt does.
- Per configuration. Hooks belong to the module, so every phase on an expert at one time
  must want the same configuration (or none: exact): a phase wanting another waits until
  the expert is idle, then the hooks are swapped (`disable_cache`, `enable_cache`).

What per-phase state means next to diffusers: WanPipeline keeps one hook state per
transformer for its whole call, and a Wan2.2 A14B call switches transformers at the
expert boundary, so each expert's cache already starts afresh at the switch. A farm phase
that covers its expert's whole step range (the default plan) therefore runs exactly
what WanPipeline runs with the same configs enabled on both experts (tested:
tests/model/test_speed.py). Phases split finer (`plan_film(max_phase_steps=...)`) restart
the cache at each split, which diffusers never does: output then differs from a
whole-pipeline run (first steps of each phase always computed, MagCache's retention
counted per phase), though it is still fixed by the storyboard, not by placement.

Counting: a call is skipped when the last transformer block's feed-forward did not run
(first-block and MagCache skip every block after the first / every block; TaylorSeer
lite predicts the output and skips every block). A forward pre-hook counts those runs
per thread, so concurrent phases on other threads do not disturb the count.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from farm.spec.speed import CacheSetting

# MagCache and TaylorSeer decide from the step count alone; first-block from the first
# block's residual, which a sequence-parallel rank sees only a shard of: its ranks could
# disagree and leave each other waiting in an all-to-all.
SHARD_SAFE = ("magcache", "taylorseer")


def diffusers_config(setting: CacheSetting, num_steps: int) -> Any:
    """diffusers' config object for `setting` on a phase of `num_steps` steps."""
    from diffusers.hooks import FirstBlockCacheConfig, MagCacheConfig, TaylorSeerCacheConfig

    p = dict(setting.params)
    if setting.cache == "first-block":
        return FirstBlockCacheConfig(threshold=p["threshold"])
    if setting.cache == "magcache":
        # num_inference_steps: MagCache counts the calls its hook sees, one per step of
        # this expert (and context), and stretches mag_ratios to that length.
        return MagCacheConfig(threshold=p["threshold"], max_skip_steps=p["max_skip_steps"],
                              retention_ratio=p["retention_ratio"], num_inference_steps=num_steps,
                              mag_ratios=list(p["mag_ratios"]))
    if setting.cache == "taylorseer":
        # Lite mode: its default (non-lite) patterns name no module of Wan's blocks
        # (`attn1`, `attn2`), which would make it a silent no-op. float32 factors: the
        # default bf16 would round the predicted output.
        return TaylorSeerCacheConfig(
            cache_interval=p["cache_interval"],
            disable_cache_before_step=p["disable_cache_before_step"],
            disable_cache_after_step=p["disable_cache_after_step"], max_order=p["max_order"],
            taylor_factors_dtype=torch.float32, use_lite_mode=True)
    raise ValueError(f"unknown cache {setting.cache!r}")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a phase's cache did: transformer calls made, and of them skipped."""

    label: str
    calls: int
    skipped: int

    def note(self) -> str:
        return f"{self.label}: skipped {self.skipped} of {self.calls} transformer calls"


class _Lease:
    """Which configuration an expert's hooks hold, and how many phases use them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.key: tuple[CacheSetting, int] | None = None
        self.users = 0


_LEASES: weakref.WeakKeyDictionary[torch.nn.Module, _Lease] = weakref.WeakKeyDictionary()
_LEASES_LOCK = threading.Lock()
_RUNS = threading.local()  # .n: last-block runs counted on this thread


def _lease(model: torch.nn.Module) -> _Lease:
    with _LEASES_LOCK:
        if model not in _LEASES:
            _LEASES[model] = _Lease()
        return _LEASES[model]


def _count_runs(module: torch.nn.Module, args: Any) -> None:
    _RUNS.n = getattr(_RUNS, "n", 0) + 1


def _configure(model: torch.nn.Module, key: tuple[CacheSetting, int] | None) -> None:
    if getattr(model, "is_cache_enabled", False):
        model.disable_cache()
    if key is None:
        return
    if not hasattr(model, "enable_cache"):
        raise ValueError(f"{type(model).__name__} takes no diffusers cache hooks; "
                         "render it with speed: exact")
    model.enable_cache(diffusers_config(*key))
    if not hasattr(model, "_reelfarm_counted"):
        model.blocks[-1].ffn.register_forward_pre_hook(_count_runs)
        model._reelfarm_counted = True


class PhaseCache:
    """One phase member's calls of its expert, under its own cache context names."""

    def __init__(self, model: torch.nn.Module, setting: CacheSetting | None, name: str,
                 num_steps: int):
        self.model, self.setting, self.name, self.num_steps = model, setting, name, num_steps
        self.calls = self.skipped = 0
        self.names: set[str] = set()

    def call(self, kind: str, step: int, sigma: float):
        """Context of one transformer call ("cond" / "uncond") at film step `step`."""
        if self.setting is None:
            return nullcontext()
        return self._cached(f"{self.name}:{kind}", step, sigma)

    @contextmanager
    def _cached(self, name: str, step: int, sigma: float) -> Iterator[None]:
        self.names.add(name)
        before = getattr(_RUNS, "n", 0)
        # The same context WanPipeline gives its transformer (step index, sigma, steps).
        with self.model.cache_context(name, step_index=step, sigma=sigma,
                                      num_inference_steps=self.num_steps):
            yield
        self.calls += 1
        self.skipped += getattr(_RUNS, "n", 0) == before

    def stats(self) -> CacheStats | None:
        if self.setting is None:
            return None
        return CacheStats(self.setting.label(), self.calls, self.skipped)


@contextmanager
def phase_cache(model: torch.nn.Module, setting: CacheSetting | None, name: str,
                phase_steps: int, film_steps: int,
                timeout_s: float = 600.0) -> Iterator[PhaseCache]:
    """Hold `model` with `setting`'s hooks (none: exact) for one phase member's run."""
    key = None if setting is None else (setting, phase_steps)
    lease = _lease(model)
    with lease.cond:
        if not lease.cond.wait_for(lambda: lease.users == 0 or lease.key == key, timeout_s):
            raise TimeoutError(f"{name}: the expert stayed busy with another speed setting "
                               f"for {timeout_s:.0f} s")
        if lease.key != key:
            _configure(model, key)
            lease.key = key
        lease.users += 1
    cache = PhaseCache(model, setting, name, film_steps)
    try:
        yield cache
    finally:
        with lease.cond:
            _drop_states(model, cache.names)
            lease.users -= 1
            lease.cond.notify_all()


def _drop_states(model: torch.nn.Module, names: set[str]) -> None:
    """Forget the hook state kept under `names` (a finished phase's), keeping others'."""
    if not names:
        return
    from diffusers.hooks.hooks import HookRegistry, StateManager

    registry = HookRegistry.check_if_exists_or_initialize(model)
    for child in (registry, *registry._get_child_registries()):
        for hook in child.hooks.values():
            for attr in vars(hook).values():
                if isinstance(attr, StateManager):
                    for n in names:
                        # StateManager keeps one state per context name; it offers only
                        # reset() of all of them, which would wipe concurrent phases'.
                        attr._state_cache.pop(n, None)
