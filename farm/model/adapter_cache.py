"""A worker's LoRA adapters, loaded into its resident experts with diffusers' PEFT API and
kept within a byte budget (least recently used leave first), so films that reuse a
character or draft LoRA skip reading and loading it again and the expert itself is never
reloaded.

    activate(expert, [(location, weight)]) ──> read + check + expert.load_lora_adapter
                                               (once per file and expert, named by its
                                               sha256), pin, evict: expert.delete_adapters
                                           ──> Active: what `scoped` sets per step

An adapter used by a phase that has not ended (in this thread between its steps, or in
another) is pinned: eviction skips it, so the cache may stay above its budget until that
phase ends and the next activation evicts.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from farm.model.adapters import (
    Active,
    AdapterError,
    adapter_name,
    changing,
    linear_shapes,
    mismatches,
    peft_state,
    read_lora,
)

log = logging.getLogger("farm.model")
# 2 GB (PoolConfig.adapter_cache_gb): 3 rank-64 A14B LoRAs in bf16 (about 600 MB each)
DEFAULT_ADAPTER_BYTES = 2_000_000_000


@dataclass(frozen=True, slots=True)
class AdapterCacheConfig:
    """`max_bytes`: the adapters a worker keeps on its device (bytes, at its dtype)."""

    max_bytes: int = DEFAULT_ADAPTER_BYTES

    def __post_init__(self) -> None:
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) \
                or self.max_bytes < 1:
            raise ValueError("adapter cache max_bytes must be a positive whole number of "
                             f"bytes, got {self.max_bytes!r}")


@dataclass(slots=True)
class CacheStats:
    loads: int = 0
    hits: int = 0
    evictions: int = 0
    load_seconds: float = 0.0


@dataclass(slots=True)
class _Entry:
    """One adapter loaded into one expert."""

    model: torch.nn.Module
    name: str
    location: str
    nbytes: int


Key = tuple[int, str]  # (id of the expert, adapter name)


class AdapterCache:
    def __init__(self, config: AdapterCacheConfig, device: torch.device, dtype: torch.dtype):
        self.config, self.device, self.dtype = config, device, dtype
        self.stats = CacheStats()
        self._items: OrderedDict[Key, _Entry] = OrderedDict()  # LRU first
        self._names: dict[str, str] = {}  # location -> adapter name (files read before)
        self._pins: dict[Key, int] = {}  # phases not ended that use the adapter
        self._lock = threading.RLock()  # activations, one at a time
        self._pin_lock = threading.Lock()  # brief: released from any thread

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._items.values())

    @property
    def locations(self) -> tuple[str, ...]:
        """Adapters held, least recently used first."""
        with self._lock:
            return tuple(entry.location for entry in self._items.values())

    def activate(self, model: torch.nn.Module, adapters: Sequence[tuple[str, float]]) -> Active:
        """The phase's adapters on `model` (loading those not held), pinned until the phase
        ends; none: the bare expert."""
        if not adapters:
            return Active(model, ())
        with self._lock:
            weights: dict[Key, float] = {}
            for location, weight in adapters:
                key = self._get(location, model)
                # one file named twice (a film entry and a draft's, two paths): PEFT holds
                # an adapter once, so its weights add (w1 B A x + w2 B A x)
                weights[key] = weights.get(key, 0.0) + weight
            own = sum(self._items[key].nbytes for key in weights)
            if own > self.config.max_bytes:
                self._evict()
                raise AdapterError(f"the phase's adapters take {own} bytes, more than this "
                                   f"worker's adapter cache ({self.config.max_bytes} bytes)")
            with self._pin_lock:
                for key in weights:
                    self._pins[key] = self._pins.get(key, 0) + 1
            self._evict()
        return Active(model, tuple((key[1], w) for key, w in weights.items()),
                      lambda keys=tuple(weights): self._unpin(keys))

    def _unpin(self, keys: tuple[Key, ...]) -> None:
        with self._pin_lock:
            for key in keys:
                self._pins[key] -= 1
                if not self._pins[key]:
                    del self._pins[key]

    def _get(self, location: str, model: torch.nn.Module) -> Key:
        name = self._names.get(location)
        if name is not None and (id(model), name) in self._items:
            return self._hit((id(model), name))
        started = time.perf_counter()
        lora = read_lora(location)
        key = (id(model), adapter_name(lora))
        self._names[location] = key[1]
        if key in self._items:  # the same file at another location
            return self._hit(key)
        problems = mismatches(lora, linear_shapes(model))
        if problems:
            raise AdapterError(f"{location}: does not fit this model: {'; '.join(problems)}")
        if not hasattr(model, "load_lora_adapter"):  # our S2V transformer: no PEFT mixin
            raise AdapterError(f"{location}: {type(model).__name__} takes no diffusers LoRA "
                               "adapters")
        state, config = peft_state(lora)
        with changing(model), _expected_peft_warnings():
            try:
                model.load_lora_adapter(state, adapter_name=key[1], prefix="transformer",
                                        metadata=config)
            except (ValueError, TypeError, RuntimeError, KeyError) as exc:
                raise AdapterError(f"{location}: diffusers could not load it into the "
                                   f"expert: {type(exc).__name__}: {exc}") from None
        seconds = time.perf_counter() - started
        self._items[key] = _Entry(model, key[1], location, lora.nbytes(self.dtype))
        self.stats.loads += 1
        self.stats.load_seconds += seconds
        log.info("loaded LoRA %s (%s layout, rank %s, %.1f MB) into %s on %s in %.3f s",
                 location, lora.layout, "/".join(map(str, lora.ranks)),
                 self._items[key].nbytes / 1e6, key[1], self.device, seconds)
        return key

    def _hit(self, key: Key) -> Key:
        self._items.move_to_end(key)
        self.stats.hits += 1
        return key

    def _evict(self) -> None:
        """Delete least recently used adapters not pinned until within the budget."""
        total = sum(entry.nbytes for entry in self._items.values())
        for key in list(self._items):
            if total <= self.config.max_bytes:
                return
            with self._pin_lock:
                if key in self._pins:
                    continue
            entry = self._items.pop(key)
            with changing(entry.model), _expected_peft_warnings():
                entry.model.delete_adapters(entry.name)
            total -= entry.nbytes
            self.stats.evictions += 1
        if total > self.config.max_bytes:
            log.info("adapter cache at %d bytes (budget %d): the rest is in use by phases "
                     "that have not ended", total, self.config.max_bytes)


@contextmanager
def _expected_peft_warnings() -> Iterator[None]:
    # PEFT warns when a second adapter joins a model and when the active one is deleted:
    # both are this cache's normal course (the next step sets its adapters afresh).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
        yield


DEFAULT_ADAPTERS = AdapterCacheConfig()
