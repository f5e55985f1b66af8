"""Scheduler policy settings, validated once when the farm starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from farm.sched.gangs import GangPolicy

ADAPTER_AFFINITY = ("prefer", "group", "blind")
FILM_ORDERS = ("share", "fifo")


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    # Tries per task (a phase of a unit, a decode, a prompt encoding) before the film fails.
    max_attempts: int = 3
    # Failures of one worker on one film after which that worker is excluded for the film.
    exclude_after: int = 2
    # Tries of one task that died with their worker (lost node, preemption) before the
    # film fails; counted apart from max_attempts, since losing a node is rarely the
    # task's fault, but a task that kills every worker it touches must stop.
    max_worker_losses: int = 10
    # Fair-share weight per tenant (default 1.0); a tenant with weight 2 gets twice the
    # work of a tenant with weight 1 when both have films waiting at the same priority.
    tenant_weights: tuple[tuple[str, float], ...] = field(default=())
    # Gangs inside a segment (CFG / sequence parallel, farm.sched.gangs): None keeps every
    # segment's phase on one worker. Executors must then run PhaseTask.layout, and decodes
    # whose bands are spread over idle workers (DecodeTask.band_workers).
    gangs: GangPolicy | None = None
    # LoRA adapters in placement (farm.sched.placement rule 1; the ledger mirrors every
    # worker's adapter cache, farm.sched.adapters):
    #   "prefer"  among the workers a phase may take, those with the fewest bytes to load
    #   "group"   also in the round's warm pass: a freed worker runs a phase of the adapter
    #             set it holds before any other (fewer loads; films run out of rank order)
    #   "blind"   adapters play no part (loads still counted): the benchmarks' baseline
    adapter_affinity: str = "prefer"
    # Between the films of one tenant at one priority (farm.sched.fairness; tenants always
    # share by weight):
    #   "share"  fair share by the work each was given: a short film arriving behind a
    #            feature starts at once and finishes early; the feature keeps its share
    #   "fifo"   admission order: the first admitted film's ready work first, the next
    #            film's on what it leaves free (render-farm queues: a film submitted
    #            first finishes first; under steady load a long film is not stretched
    #            by every film that arrives after it)
    film_order: str = "share"

    def __post_init__(self) -> None:
        if self.film_order not in FILM_ORDERS:
            raise ValueError(f"film_order must be one of {', '.join(FILM_ORDERS)}, "
                             f"got {self.film_order!r}")
        if self.adapter_affinity not in ADAPTER_AFFINITY:
            raise ValueError(f"adapter_affinity must be one of {', '.join(ADAPTER_AFFINITY)}, "
                             f"got {self.adapter_affinity!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.max_worker_losses < 1:
            raise ValueError(f"max_worker_losses must be >= 1, got {self.max_worker_losses}")
        if self.exclude_after < 1:
            raise ValueError(f"exclude_after must be >= 1, got {self.exclude_after}")
        for tenant, w in self.tenant_weights:
            if not w > 0:
                raise ValueError(f"tenant weight must be > 0, got {w} for tenant {tenant!r}")

    def tenant_weight(self, tenant: str) -> float:
        return dict(self.tenant_weights).get(tenant, 1.0)
