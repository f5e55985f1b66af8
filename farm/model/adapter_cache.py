"""A worker's LoRA adapters, kept on its device within a byte budget (least recently used
leave first), so films that reuse a character or draft LoRA skip reading it again and the
expert itself is never reloaded."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from farm.model.adapters import (
    Active,
    AdapterError,
    Lora,
    install_hooks,
    linear_shapes,
    mismatches,
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


class AdapterCache:
    def __init__(self, config: AdapterCacheConfig, device: torch.device, dtype: torch.dtype):
        self.config, self.device, self.dtype = config, device, dtype
        self.stats = CacheStats()
        self._items: OrderedDict[str, Lora] = OrderedDict()  # location -> adapter, LRU first
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(lora.nbytes for lora in self._items.values())

    @property
    def locations(self) -> tuple[str, ...]:
        """Adapters held, least recently used first."""
        with self._lock:
            return tuple(self._items)

    def activate(self, model: torch.nn.Module,
                 adapters: Sequence[tuple[str, float]]) -> Active | None:
        """The phase's adapters on `model` (loading those not held); None for none."""
        if not adapters:
            return None
        loras = [self._get(location, model) for location, _ in adapters]
        self._evict(keep={location for location, _ in adapters})
        install_hooks(model, {path for lora in loras for path in lora.layers})
        return Active(model, tuple((lora, w) for lora, (_, w) in zip(loras, adapters, strict=True)))

    def _get(self, location: str, model: torch.nn.Module) -> Lora:
        with self._lock:
            if location in self._items:
                self._items.move_to_end(location)
                self.stats.hits += 1
                return self._items[location]
        started = time.perf_counter()
        lora = read_lora(location)
        problems = mismatches(lora, linear_shapes(model))
        if problems:
            raise AdapterError(f"{location}: does not fit this model: {'; '.join(problems)}")
        lora = lora.to(self.device, self.dtype)
        seconds = time.perf_counter() - started
        with self._lock:
            self._items[location] = lora
            self.stats.loads += 1
            self.stats.load_seconds += seconds
        log.info("loaded LoRA %s (%s layout, rank %s, %.1f MB) on %s in %.3f s", location,
                 lora.layout, "/".join(map(str, lora.ranks)), lora.nbytes / 1e6, self.device,
                 seconds)
        return lora

    def _evict(self, keep: set[str]) -> None:
        # A phase running in another thread keeps its adapters alive through its Active
        # until it ends: eviction only drops the cache's reference.
        with self._lock:
            total = sum(lora.nbytes for lora in self._items.values())
            for location in list(self._items):
                if total <= self.config.max_bytes:
                    return
                if location not in keep:
                    total -= self._items.pop(location).nbytes
                    self.stats.evictions += 1
            if total > self.config.max_bytes:
                raise AdapterError(f"the phase's adapters take {total} bytes, more than this "
                                   f"worker's adapter cache ({self.config.max_bytes} bytes)")


DEFAULT_ADAPTERS = AdapterCacheConfig()
