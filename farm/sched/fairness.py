"""Who goes first: strict priority, then weighted fair share by virtual time.

    rank(film) = (-priority, tenant vtime, film vtime, admission order)    lower first
                 film vtime left out with film_order "fifo" (SchedulerConfig)

Every phase handed out charges its work (steps x latent tokens of its segments, a proxy
for GPU time that makes a 720p step cost more than a 480p one) to the film's and the
tenant's virtual time, divided by their weights. The best-ranked film places one task,
is charged, and goes back in line, so within a priority level slots are interleaved
between tenants in proportion to their weights, then between the films of a tenant.

NOTE(fair-share): virtual times are lifted, when a film or tenant (re)activates, to the
least-served active peer (start-time fair queuing). Without the lift a film arriving
with vtime 0 would take every slot until it caught up with films that have been
running for an hour, stalling their streams; with it a small film shares from the
moment it arrives and, being small, finishes early, while a huge film keeps its share.
Priority is strict: a higher priority film takes the next free slots (preemption at
phase boundaries; running phases are never killed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from farm.plan.film import FilmPlan, Unit
from farm.sched.state import FilmRecord

# A film's priority: higher goes first. The one home of the rule: the scheduler, the
# director and the API all check it here.
MIN_PRIORITY, MAX_PRIORITY = 0, 100


def priority_problem(priority: int) -> str | None:
    """What is wrong with `priority` (to follow the field's name), or None."""
    if MIN_PRIORITY <= priority <= MAX_PRIORITY:
        return None
    return f"must be in [{MIN_PRIORITY}, {MAX_PRIORITY}], got {priority}"


def check_priority(priority: int) -> None:
    if (problem := priority_problem(priority)) is not None:
        raise ValueError(f"priority {problem}")


def unit_tokens(plan: FilmPlan, unit: Unit) -> int:
    """Transformer tokens of all segments of a unit (latent frames x patches)."""
    film = plan.film
    prof = film.profile
    per_frame = (film.height // prof.size_multiple) * (film.width // prof.size_multiple)
    return sum(seg.window.size for seg in unit.segments) * max(1, per_frame)


class FairShare:
    """Virtual times of tenants (films keep theirs on the FilmRecord)."""

    def __init__(self, tenant_weight: Callable[[str], float], film_order: str = "share"):
        self._tenant_weight = tenant_weight
        self._tenant_vtime: dict[str, float] = {}
        self._fifo = film_order == "fifo"

    def rank(self, f: FilmRecord) -> tuple[float, float, float, int]:
        return (-f.priority, self._tenant_vtime.get(f.tenant, 0.0),
                0.0 if self._fifo else f.vtime, f.seq)

    def activate(self, f: FilmRecord, active: Iterable[FilmRecord]) -> None:
        """`f` becomes schedulable (admitted or resumed); `active` are the others."""
        peers = [o for o in active if o is not f]
        same = [o.vtime for o in peers if o.tenant == f.tenant]
        if same:
            f.vtime = max(f.vtime, min(same))
        else:  # the tenant (re)activates: lift it to the least-served active tenant
            others = [self._tenant_vtime.get(o.tenant, 0.0) for o in peers]
            now = self._tenant_vtime.get(f.tenant, 0.0)
            self._tenant_vtime[f.tenant] = max([now, min(others)] if others else [now])

    def charge(self, f: FilmRecord, work: float) -> None:
        f.vtime += work / f.weight
        t = f.tenant
        self._tenant_vtime[t] = self._tenant_vtime.get(t, 0.0) + work / self._tenant_weight(t)
