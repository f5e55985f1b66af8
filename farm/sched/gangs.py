"""Gang size: how many GPUs one segment's phase gets (pure, a decision per phase).

    many segments waiting, few idle GPUs  -> 1 (no communication, best throughput)
    few segments, many idle GPUs          -> the layout (CFG x Ulysses) that finishes the
                                             waiting segments soonest, in waves if need be,
                                             and wastes little of the GPUs

Rule, for a phase of a unit of m segments, when the scheduler places it:

    waiting = segments (this unit's included) still waiting for the pool this round
    idle    = distinct free workers of the pool (the film's exclusions applied), and
              those busy only with short tasks (prompt, image, decode: seconds)
    wave(L) = m x (idle // (m x size(L)))      segments that run at once on layout L
    layout  = the layout with the smallest  ratio(L) x ceil(waiting / wave(L))  (the
              waiting segments in waves of L; ties: the fewer GPUs) among those with
                m x size <= idle, size <= max_size,
                efficiency = 1 / (ratio x size) >= min_efficiency,
                Ulysses degree dividing the model's heads, CFG only if guidance > 1
              (ratios from the published table and the link: farm.sched.speedup)
    no table for the film's model and resolution, or waiting >= idle: 1 x 1.

Equipartition (every waiting segment now, on idle // waiting GPUs) is the one-wave case;
more waves win when the layouts that fit a share are poor: 12 segments on 64 GPUs get
Ulysses 5 each (ratio 0.225, 4 GPUs idle) by equipartition, but CFG 2 x Ulysses 8 in 3
waves of 4 is done in 3 x 0.073 = 0.220. The unit needs m x layout.size workers, each rank
on its own worker; when some are still busy with short tasks the phase waits for them
(holding the free ones) rather than run for minutes on a narrower gang. The rule adapts to
load by itself: under a backlog few workers are idle and gangs stay at 1; a lone film on
an idle farm gets wide gangs. `min_efficiency` bounds the GPU-seconds a gang may waste (0.8: at most
25 % more than on one GPU each), so a burst arriving just after does not find the farm
busy with inefficient gangs.

Nodes: worker ids name their node ("...@<node>", placement.node_of). A Ulysses group of at
most NODE_GPUS counts toward a wave only where one node has that many idle workers, and
its ranks are placed in one node (placement: best fit); beyond a node the table prices
the inter-node all-to-all. `min_size` > 1 makes phases wait for gangs of at least that
many GPUs instead of running on one (as the official script's groups of G do).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from farm.sched.output import Layout
from farm.sched.placement import Need, Round
from farm.sched.speedup import NODE_GPUS, SpeedupTable, published_tables
from farm.sched.state import GangMemo

SINGLE = Layout()


@dataclass(frozen=True, slots=True)
class GangPolicy:
    tables: tuple[SpeedupTable, ...] = field(default_factory=published_tables)
    # Between nodes (Ulysses beyond 8 GPUs, CFG all-gathers), bytes per second.
    link_bytes_per_s: float = 50e9
    # Smallest 1 / (ratio x size) a gang may have.
    min_efficiency: float = 0.8
    max_size: int = 80
    # Smallest gang a phase may run on (1: any). Above 1 the rule never falls back to one
    # GPU: a phase waits for its gang, as a clip waits for a free group of G GPUs (a
    # setting for large farms where chains of units make the critical path).
    min_size: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.min_efficiency <= 1:
            raise ValueError(f"min_efficiency must be in (0, 1], got {self.min_efficiency}")
        if self.max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {self.max_size}")

    def table(self, family: str, height: int) -> SpeedupTable | None:
        return next((t for t in self.tables if (t.family, t.height) == (family, height)), None)

    def choose(self, family: str, height: int, guidance: float, waiting: int, idle: int,
               members: int = 1, nodes: tuple[int, ...] | None = None) -> Layout:
        """The layout of one segment's phase, for a unit of `members` segments (see the
        module docstring). `nodes`: the idle workers per node; a Ulysses group of at
        most a node's GPUs counts only where one node holds it (the table prices groups
        within a node; beyond NODE_GPUS it prices the inter-node link)."""
        table = self.table(family, height)
        if table is None or waiting < 1:
            return SINGLE
        if self.min_size > 1:
            return self._at_least(table, guidance, waiting, idle, members, nodes)
        if waiting >= idle:
            return SINGLE
        nodes = nodes or (idle,)
        best, best_time = SINGLE, float("inf")
        fits = table.layouts(cfg=guidance > 1.0, max_size=min(idle // members, self.max_size))
        for layout in sorted(fits, key=lambda lay: lay.size):  # 1 x 1 first; ties: fewer GPUs
            r = table.ratio(layout, self.link_bytes_per_s)
            if 1.0 / (r * layout.size) < self.min_efficiency:
                continue
            groups = (sum(n // layout.sp for n in nodes) if layout.sp <= NODE_GPUS
                      else idle // layout.sp)
            wave = members * (groups // (members * layout.cfg))
            if wave < 1:
                continue
            t = r * -(-waiting // wave)  # ceil: the waiting segments in waves of this layout
            if t < best_time * (1 - 1e-9):
                best, best_time = layout, t
        return best

    def _at_least(self, table: SpeedupTable, guidance: float, waiting: int, idle: int,
                  members: int, nodes: tuple[int, ...] | None) -> Layout:
        """The fastest layout of at least min_size GPUs for the waiting segments in waves
        of the idle GPUs; when none fits now, the smallest one (the phase waits for it)."""
        big = [lay for lay in table.layouts(cfg=guidance > 1.0, max_size=self.max_size)
               if lay.size >= self.min_size]
        if not big:
            return SINGLE
        fallback = min(big, key=lambda lay: (lay.size, table.ratio(lay, self.link_bytes_per_s)))
        any_size = replace(self, min_size=1)
        pick = any_size.choose(table.family, table.height, guidance, min(waiting, idle - 1),
                               idle, members, nodes) if idle > 1 else SINGLE
        return pick if pick.size >= self.min_size else fallback

    def options(self, family: str, height: int, guidance: float) -> list[tuple[Layout, float]]:
        """Every admissible layout and its ratio, fastest first (for displays and the
        simulator's lower bound)."""
        table = self.table(family, height)
        if table is None:
            return [(SINGLE, 1.0)]
        out = [(lay, table.ratio(lay, self.link_bytes_per_s))
               for lay in table.layouts(cfg=guidance > 1.0, max_size=self.max_size)]
        return sorted(((lay, r) for lay, r in out if 1.0 / (r * lay.size) >= self.min_efficiency),
                      key=lambda lr: lr[1])


def place_phase(round_: Round, policy: GangPolicy | None, need: Need, excluded: frozenset[str],
                preferred: tuple[str | None, ...], *, family: str, height: int,
                guidance: float, previous: GangMemo | None = None,
                key: str = "") -> tuple[tuple[str, ...], Layout, str] | None:
    """Workers for a unit's phase (one member per segment, in order, each member's ranks
    together, rank 0 where the member's data is), its layout and the name of its gangs
    ("" = new); None if it does not fit. The `previous` phase's gangs are reused when the
    rule picks their layout again and all their workers are free and last ran them. A
    gang that does not fit falls back to one worker per member. `family`: the film's model
    family, whose speedup tables size the gang (Need.model names the weights, not the
    family). In the warm pass (farm.sched.choice) the layout is still chosen on every idle
    worker; a gang is then placed as in the switching pass (its width buys more than the
    switch of its cold ranks costs, and placement gives it warm ranks first), one worker
    per member only on warm ones. `key` names the unit (a gang that waits is counted
    once per round, though both passes offer it)."""
    warm_only, round_.warm_only = round_.warm_only, False
    try:
        layout = SINGLE
        if policy is not None:
            layout = policy.choose(family, height, guidance, round_.waiting(need),
                                   round_.idle(need, excluded, soon=True), len(preferred),
                                   round_.idle_nodes(need, excluded, soon=True))
            if len(preferred) * layout.size > len(round_.pool(need, excluded)):
                layout = SINGLE  # a gang wider than its whole pool would wait forever
        round_.warm_only = warm_only and layout.size == 1
        return _place(round_, layout, need, excluded, preferred, previous, key)
    finally:
        round_.warm_only = warm_only


def _place(round_: Round, layout: Layout, need: Need, excluded: frozenset[str],
           preferred: tuple[str | None, ...],
           previous: GangMemo | None, key: str) -> tuple[tuple[str, ...], Layout, str] | None:
    members = len(preferred)
    if (previous is not None and previous.layout == layout
            and not round_.warm_elsewhere(need, excluded, previous.worker_ids, previous.key)
            and round_.take(need, excluded, previous.worker_ids, previous.key)):
        round_.placed(need, members)
        return previous.worker_ids, layout, previous.key
    if layout.size > 1:
        # an open gang keeping shards of the model's experts (offload "shard"): it
        # switches nothing, where a new one loads every rank's shards
        for memo in round_.shard_gangs.get(need.model, ()):
            if (memo.layout == layout and len(memo.worker_ids) == members * layout.size
                    and round_.take(need, excluded, memo.worker_ids, memo.key)):
                round_.placed(need, members)
                return memo.worker_ids, layout, memo.key
        ranks = tuple(w for lead in preferred for w in (lead, *[None] * (layout.size - 1)))
        ids = round_.place(need, excluded, members * layout.size, ranks, distinct=True,
                           block=layout.sp)
        if ids is not None:
            round_.placed(need, members)
            return ids, layout, ""
        # Some of its workers are busy with short tasks (seconds): wait for them, holding
        # the free ones, rather than run for minutes on a narrower gang.
        round_.reserve(need, excluded)
        round_.placed(need, members, key)
        return None
    ids = round_.place(need, excluded, members, preferred)
    if ids is None:
        return None
    round_.placed(need, members)
    return ids, SINGLE, ""


def band_ranks(round_: Round, need: Need, excluded: frozenset[str], extra: int) -> tuple[str, ...]:
    """Workers for the other bands of a decode (farm.plan.segments.decode_bands): free ones
    only, never a slot a gang holds, up to `extra` (ranks share the bands out, so any
    number gives the same frames). They count as busy only shortly. Decodes ready in the
    same round (Round.decodes, this one included) share the idle workers: each of the
    others keeps one to start on, and the rest are split evenly, so the first decode does
    not take every idle worker while the next waits for one."""
    others = max(0, round_.decodes.get(need, 1) - 1)
    round_.decodes[need] = others
    n = min(extra, (round_.idle(need, excluded) - others) // (others + 1))
    while n > 0:
        ids = round_.place(need, excluded, n, (), distinct=True)
        if ids is not None:
            round_.soon.update(ids)
            return ids
        n -= 1
    return ()
