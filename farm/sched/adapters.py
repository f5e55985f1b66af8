"""A worker's LoRA adapter cache as the scheduler sees it (pure).

The runtime keeps adapters on a worker's GPU within a byte budget, least recently used
leaving first (farm.model.adapter_cache.AdapterCache.activate; budget: the pool's
`adapter_cache_gb`). Every phase a worker runs goes through it in the order the scheduler
hands phases out, so the ledger mirrors it with the same rule instead of asking workers
what they hold (no report plumbing):

    a phase with adapters [a, b] on a worker:
      1. each adapter in order: held -> most recently used; else loaded (appended, a load)
      2. while the bytes held exceed the budget: drop the least recently used adapter
         that the phase does not use

A worker that comes back from a failure or restart starts empty (as its runtime does).
Placement reads `missing` (farm.sched.placement): bytes a phase would load there.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from farm.plan.adapters import AdapterSet


@dataclass(frozen=True, slots=True)
class Loads:
    """What one phase loaded on one worker."""

    count: int = 0
    bytes: int = 0


@dataclass
class AdapterMirror:
    budget: int
    # location -> bytes, least recently used first.
    held: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def missing(self, adapters: AdapterSet) -> int:
        """Bytes of the set this worker would have to load."""
        return sum(size for loc, size in adapters if loc not in self.held)

    def use(self, adapters: AdapterSet) -> Loads:
        """A phase with `adapters` runs here: the runtime's rule (module docstring)."""
        loads = Loads()
        for loc, size in adapters:
            if loc in self.held:
                self.held.move_to_end(loc)
            else:
                self.held[loc] = size
                loads = Loads(loads.count + 1, loads.bytes + size)
        keep = {loc for loc, _ in adapters}
        total = sum(self.held.values())
        for loc in list(self.held):
            if total <= self.budget:
                break
            if loc not in keep:
                total -= self.held.pop(loc)
        return loads
