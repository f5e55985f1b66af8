"""Choosing workers for a task: capability, exclusion, gang all-or-nothing, locality,
balance between pools.

A worker serves a need (a part, "high", "low", "dense", "text" or "vae", of the film's
model) when it holds the bare part or "<model>/<part>" (see WorkerState.serves). Preference for each
member of a phase, in order:
  0. warm weights: not a worker whose last phase ran another expert. A worker that holds
     several experts keeps one in GPU memory; switching moves ~28 GB of weights, while
     handing a segment over moves ~80 MB of latents, so a warm worker elsewhere beats a
     cold one that holds the data; then a worker that does not offload its experts (it
     would copy one in, ~28 GB, for every phase);
  1. adapters (SchedulerConfig.adapter_affinity): the fewest bytes of the phase's LoRA
     adapters to load (the ledger's mirror of each worker's adapter cache,
     farm.sched.adapters). A rank-64 A14B LoRA is ~0.6 GB: far less than an expert (so
     after rule 0), far more than the latents a handoff moves (so before rule 2);
  2. locality: the worker that already holds the member's data (no transfer);
  3. balance: the worker whose *other* capabilities are least in demand this round.
     A dedicated worker has no other capabilities, so it goes first; a worker that
     also holds the low-noise expert is kept for the low-noise pool while that pool
     has a backlog, and used for high-noise work once it has none; then the worker
     that holds the fewest things (the most specialised), keeping flexible ones free;
  4. the most free slots (spread), then the worker id (determinism).

Before any of this, a rule: a worker running phases of an expert runs no phase of it with
other active LoRA adapters meanwhile (`Round.adapter_key`; the active set belongs to the
expert, so two gangs switching it on two shared workers would each wait for the other).

Also before any of this, the round's warm pass (farm.sched.choice, `Round.warm_only`) offers
one-GPU phases only the workers that need no switch, so a freed worker gets another
task of the expert it holds before a task that would switch it; with adapter affinity
"group", only those that also hold the phase's adapters, so a freed worker next runs a
phase of the adapter set it holds (phases of one adapter set gather on the workers
holding it). Not the default: a load costs ~0.2 s where a phase takes minutes, and
bench/scale.py --adapters shows the reordering costing more makespan than it saves.

All-or-nothing: `place` returns a worker per member or None. A gang that does not fit
reserves every free slot of its pool for the rest of the round, so a stream of single
segments cannot keep it waiting forever; short tasks (prompt, image, decode) may still
backfill reserved slots. A gang larger than every slot its pool has would never fit; it
waits until the whole pool is idle and then shares workers, several members per worker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from farm.plan.adapters import AdapterSet
from farm.sched.state import GangMemo, WorkerState

# Parts of short tasks (prompt, image, decode): they load no expert, so never switch one.
SHORT_PARTS = frozenset({"text", "vae"})
# WorkerState.warm's part on a worker whose last phase ran on a gang under offload
# "shard": it holds shards of every expert with that gang, and no whole one.
SHARDS = "shards"


class Need(NamedTuple):
    """What a worker must have loaded to run a task: DESIGN.md section 7's phase key.

    `model` is the film's model as the farm serves it (its name, "toy" or a folder), not
    its family: "toy" and "tiny" are one family (same experts, same rules) with different
    weights, so a worker holding toy's high-noise expert must never run a tiny phase."""

    part: str  # "high", "low", "dense" (experts), "text", "vae"
    model: str


class Round:
    """Free slots, reservations and demand during one schedule() call."""

    def __init__(self, workers: Iterable[WorkerState], demand: dict[Need, int],
                 soon: frozenset[str] = frozenset(), affinity: str = "prefer",
                 shard_gangs: dict[str, list[GangMemo]] | None = None):
        """`soon`: workers busy only with short tasks (prompt, image, decode: seconds, where
        a phase takes minutes); a gang may wait for them rather than start narrower.
        `affinity`: SchedulerConfig.adapter_affinity (rule 1, and the warm pass).
        `shard_gangs`: per model, the open gangs whose ranks keep shards of its experts
        (Ledger.open_shard_gangs)."""
        self.workers = [w for w in workers if w.alive and not w.draining]
        self.shard_gangs = shard_gangs or {}
        # Ranks of open shard gangs: a new gang there would close one (its shards).
        self._sharded = {wid for memos in self.shard_gangs.values() for m in memos
                         for wid in m.worker_ids}
        self._by_id = {w.spec.worker_id: w for w in self.workers}
        self.free = {w.spec.worker_id: w.free for w in self.workers}
        self.soon = set(soon)
        self.reserved: set[str] = set()
        # Members (segments) of phases waiting at the start of the round, and placed since.
        self._demand, self._placed = dict(demand), {need: 0 for need in demand}
        # Smallest member count that failed per pool: slots only shrink within a round,
        # so a pool that could not fit k members cannot fit k or more later.
        self._failed: dict[tuple[Need, frozenset[str], bool, AdapterSet, tuple | None],
                           int] = {}
        self._pools: dict[tuple[Need, frozenset[str]], list[WorkerState]] = {}
        self._pressure = _pressure(self.workers, self.free, demand)
        # The warm pass (farm.sched.choice): one-GPU phases see only workers that need no
        # expert switch and fail without reserving anything (gangs.place_phase lets a
        # gang, whose width pays more than a switch, see every worker).
        self.warm_only = False
        # Decodes waiting for a worker this round, per need: they share the idle workers
        # as band ranks (gangs.band_ranks) instead of the first taking them all.
        self.decodes: dict[Need, int] = {}
        self._held: set[str] = set()
        # The adapter set of the phase being placed (the scheduler sets it around each
        # phase's placement; () for other tasks), and whether placement minds it.
        self.adapters: AdapterSet = ()
        self.affinity = affinity
        # What each worker's experts have active while its phases run (`note_active`), and
        # the configuration of the phase being placed (FilmPlan.adapter_key; None while
        # placing other tasks). An expert's active adapters belong to it, not to a phase:
        # two phases with different ones on one expert take turns step by step, and two
        # gangs doing so on two shared workers would each wait for the other mid-step (a
        # rank holds its step while it waits in a collective). So a worker runs phases of
        # one configuration per expert at a time (module docstring; farm.model.adapters).
        self.active_on: dict[str, set[tuple[Need, tuple]]] = {}
        self.adapter_key: tuple | None = None

    @property
    def has_free(self) -> bool:
        return any(n > 0 for n in self.free.values())

    def pool(self, need: Need, excluded: frozenset[str]) -> list[WorkerState]:
        """Alive workers that serve `need` and are not excluded."""
        key = (need, excluded)
        if key not in self._pools:
            self._pools[key] = [w for w in self.workers if w.serves(*need)
                                and w.spec.worker_id not in excluded]
        return self._pools[key]

    def waiting(self, need: Need) -> int:
        """Segments still waiting for this need's workers in this round."""
        return self._demand.get(need, 0) - self._placed.get(need, 0)

    def idle(self, need: Need, excluded: frozenset[str], soon: bool = False) -> int:
        """Distinct workers serving `need` with a free, unreserved slot (with `soon`, also
        those that will have one when their short tasks end)."""
        return sum(self.idle_nodes(need, excluded, soon))

    def idle_nodes(self, need: Need, excluded: frozenset[str],
                   soon: bool = False) -> tuple[int, ...]:
        """`idle` per node (node_of the worker ids), largest first."""
        left = self._left(self.pool(need, excluded), False, need)
        nodes: dict[str, int] = {}
        for wid, n in left.items():
            if n > 0 or (soon and wid in self.soon and wid not in self.reserved
                         and not self._skip(wid, need)):
                nodes[node_of(wid)] = nodes.get(node_of(wid), 0) + 1
        return tuple(sorted(nodes.values(), reverse=True))

    def placed(self, need: Need, segments: int, key: str = "") -> None:
        """`segments` of `need` are placed, or wait holding their pool (`key` names the
        unit: it is counted once, though both passes of a round may offer it)."""
        if key:
            if key in self._held:
                return
            self._held.add(key)
        self._placed[need] = self._placed.get(need, 0) + segments

    def place(self, need: Need, excluded: frozenset[str], num: int,
              preferred: tuple[str | None, ...] = (), backfill: bool = False,
              distinct: bool = False, block: int = 1) -> tuple[str, ...] | None:
        """A worker id per member, or None when the members do not fit now. `distinct`:
        every member on a different worker (the ranks of a gang), in runs of `block`
        ranks that share a node where one has room (a Ulysses group: its all-to-all
        stays off the inter-node link; see `node_of`)."""
        # a warm-pass failure depends on the adapter set (rule 1), a switching one does not
        key = (need, excluded, self.warm_only, self.adapters if self.warm_only else (),
               self.adapter_key)
        if not distinct and num >= self._failed.get(key, num + 1):
            return None
        pool = self.pool(need, excluded)
        if distinct:
            ids = self._fit(pool, need, num, preferred, backfill, distinct=True, block=block)
        elif num > sum(w.spec.slots for w in pool):
            ids = self._oversubscribe(pool, need, num)
        else:
            ids = self._fit(pool, need, num, preferred, backfill)
        if ids is None:
            if not distinct:
                self._failed[key] = num
            return None
        for wid in ids:
            self.free[wid] = max(0, self.free[wid] - 1)
            if backfill:  # short tasks (the only backfill) leave their workers soon
                self.soon.add(wid)
        return ids

    def take(self, need: Need, excluded: frozenset[str], ids: tuple[str, ...],
             gang: str) -> bool:
        """These exact workers, each once, if every one serves `need`, has a free slot
        nobody holds and last ran gang `gang` (its runtime keeps that gang open)."""
        pool = {w.spec.worker_id: w for w in self.pool(need, excluded)}
        ok = len(set(ids)) == len(ids) and all(
            wid in pool and self.free[wid] > 0 and wid not in self.reserved
            and pool[wid].gang == gang and not self._skip(wid, need) for wid in ids)
        if ok:
            for wid in ids:
                self.free[wid] -= 1
        return ok

    def warm_elsewhere(self, need: Need, excluded: frozenset[str], ids: tuple[str, ...],
                       gang: str = "") -> bool:
        """Whether some of `ids` (the ranks of gang `gang`) would have to switch experts
        for `need` while as many free workers are warm for it (or fresh): a gang re-formed
        there pays the set-up (a second) instead of an expert switch (seconds, ~28 GB of
        weights). Ranks keeping the gang's shards (offload "shard") switch nothing."""
        pool = {w.spec.worker_id: w for w in self.pool(need, excluded)}
        if all(pool[w].warm in (None, need) or (pool[w].warm == (SHARDS, need.model)
                                                and pool[w].gang == gang)
               for w in ids if w in pool):
            return False
        warm = sum(1 for wid, w in pool.items() if w.warm in (None, need)
                   and self.free[wid] > 0 and wid not in self.reserved)
        return warm >= len(ids)

    def reserve(self, need: Need, excluded: frozenset[str]) -> None:
        """A gang did not fit: hold its pool's free slots for it (phases only; not in the
        warm pass, whose failures the switching pass tries again)."""
        if self.warm_only:
            return
        for w in self.pool(need, excluded):
            if self.free[w.spec.worker_id] > 0:
                self.reserved.add(w.spec.worker_id)

    def _left(self, pool: list[WorkerState], backfill: bool, need: Need) -> dict[str, int]:
        return {w.spec.worker_id: (self.free[w.spec.worker_id] if backfill or (
            w.spec.worker_id not in self.reserved and not self._skip(w.spec.worker_id, need))
            else 0) for w in pool}

    def note_active(self, ids: Iterable[str], need: Need, key: tuple) -> None:
        """A phase needing `need` with adapter configuration `key` runs on `ids`."""
        for wid in ids:
            self.active_on.setdefault(wid, set()).add((need, key))

    def _skip(self, wid: str, need: Need) -> bool:
        """A worker running a phase of `need`'s expert with other active adapters than
        the phase being placed (the module's first rule); in the warm pass also one whose
        expert in memory is another one than `need`'s (a phase there would wait for a
        switch), or with affinity one that would load some of the phase's adapters; short
        tasks load neither."""
        if self.adapter_key is not None and need[0] not in SHORT_PARTS and any(
                n == need and k != self.adapter_key for n, k in self.active_on.get(wid, ())):
            return True
        if not self.warm_only or need[0] in SHORT_PARTS:
            return False
        warm = self._by_id[wid].warm
        return (warm is not None and warm != need) or (
            self.affinity == "group" and self._missing(wid)[0] > 0)

    def _missing(self, wid: str) -> tuple[int, int]:
        """Bytes of the phase's adapters worker `wid` would load, and bytes of other
        adapters that would leave its cache for them ((0, 0) when blind)."""
        if self.affinity == "blind" or not self.adapters:
            return 0, 0
        cache = self._by_id[wid].adapters
        load = cache.missing(self.adapters)
        return load, max(0, min(sum(cache.held.values()), sum(cache.held.values()) + load
                                - cache.budget))

    def _fit(self, pool: list[WorkerState], need: Need, num: int,
             preferred: tuple[str | None, ...], backfill: bool,
             distinct: bool = False, block: int = 1) -> tuple[str, ...] | None:
        left = self._left(pool, backfill, need)
        if distinct:
            left = {wid: min(n, 1) for wid, n in left.items()}
        if sum(left.values()) < num:
            return None
        cold = {w.spec.worker_id for w in pool if not backfill and self._cold(w, need, distinct)}
        # (bytes to load, bytes held there it would evict): load where nothing useful goes
        miss = {w.spec.worker_id: (0, 0) if backfill else self._missing(w.spec.worker_id)
                for w in pool}
        # rule 1 before rule 2: a member's data stays put only if no warm free worker
        # would load fewer adapter bytes
        least = min((miss[wid] for wid, n in left.items() if n > 0 and wid not in cold),
                    default=(0, 0))
        chosen: list[str | None] = [None] * num
        for i in range(num):
            want = preferred[i] if i < len(preferred) else None
            if (want is not None and left.get(want, 0) > 0 and want not in cold
                    and miss[want] <= least):
                chosen[i] = want
                left[want] -= 1
        if all(c is not None for c in chosen):
            return tuple(c for c in chosen if c is not None)
        order = sorted((w for w in pool if left[w.spec.worker_id] > 0),
                       key=lambda w: (w.spec.worker_id in cold, w.spec.offload != "none",
                                      miss[w.spec.worker_id], self._other_demand(w, need),
                                      len(w.spec.holds), -left[w.spec.worker_id],
                                      w.spec.worker_id))
        if block > 1:  # preferred ranks may give way, so they stay candidates
            ids = [w.spec.worker_id for w in order]
            # the pool's nodes hold every block once their workers are free
            room = sum(n // block for n in Counter(node_of(w.spec.worker_id)
                                                   for w in pool).values())
            return _by_node(chosen, ids + [c for c in chosen if c is not None and c not in ids],
                            block, cold, wait=room * block >= num)
        slots = (w.spec.worker_id for w in order for _ in range(left[w.spec.worker_id]))
        return tuple(c if c is not None else next(slots) for c in chosen)

    def _cold(self, w: WorkerState, need: Need, gang: bool) -> bool:
        """Whether a phase there must first load weights: an expert switch; as the rank
        of a new gang under offload "shard", closing an open shard gang (a new gang's
        ranks load their shards wherever it forms)."""
        if gang and w.spec.offload == "shard":
            return w.spec.worker_id in self._sharded
        return w.warm is not None and w.warm != need

    def _oversubscribe(self, pool: list[WorkerState], need: Need,
                       num: int) -> tuple[str, ...] | None:
        if not pool or any(self.free[w.spec.worker_id] < w.spec.slots
                           or w.spec.worker_id in self.reserved
                           or self._skip(w.spec.worker_id, need) for w in pool):
            return None
        slots = [w.spec.worker_id for w in sorted(pool, key=lambda w: w.spec.worker_id)
                 for _ in range(w.spec.slots)]
        return tuple(slots[i % len(slots)] for i in range(num))

    def _other_demand(self, w: WorkerState, need: Need) -> float:
        return sum(p for n, p in self._pressure.items() if n != need and w.serves(*n))


def node_of(worker_id: str) -> str:
    """The node a worker runs on: what follows "@" in its id (serving.pool registers
    "<pool>-<replica>-<n>@<node address>"); "" (one node for all) when there is none."""
    head, at, node = worker_id.rpartition("@")
    return node if at else ""


def _by_node(chosen: list[str | None], order: list[str], block: int,
             cold: set[str], wait: bool = False) -> tuple[str, ...] | None:
    """Fill the open ranks, `block` at a time, from one node each where one has room:
    the preferred rank's node if it fits the rest of the block, else the node that fits
    it with the fewest cold workers among those it would give, then the fewest free
    candidates (best fit keeps whole nodes for wide gangs), a preferred rank elsewhere
    giving way (handing data over costs milliseconds, a Ulysses group across nodes
    seconds per phase). No node fits: None with `wait` (the pool's nodes hold every block
    once their workers are free: a phase on a group across nodes pays the inter-node
    all-to-all for all its steps, minutes at 720p, where the wait is one phase's end at
    most), else the fullest nodes first. With no node in the ids this is the order's
    first candidates, as without blocks."""
    used = {c for c in chosen if c is not None}
    out = list(chosen)
    for b in range(0, len(out), block):
        ids = out[b:b + block]
        nodes: dict[str, list[str]] = {}
        for wid in order:
            if wid not in used:
                nodes.setdefault(node_of(wid), []).append(wid)
        pinned = {node_of(c) for c in ids if c is not None}
        need = sum(c is None for c in ids)
        if len(pinned) == 1 and len(nodes.get(next(iter(pinned)), [])) >= need:
            pool = nodes[next(iter(pinned))]
        else:
            fits = [n for n in nodes if len(nodes[n]) >= len(ids)]
            if fits:
                best = min(fits, key=lambda n: (  # ties: the order's first
                    sum(w in cold for w in nodes[n][:len(ids)]), len(nodes[n])))
                used -= {c for c in ids if c is not None}
                ids = [None] * len(ids)
                pool = nodes[best]
            elif wait:
                return None
            else:
                pool = [w for n in sorted(nodes, key=lambda n: -len(nodes[n])) for w in nodes[n]]
        fill = iter(pool)
        ids = [c if c is not None else next(fill) for c in ids]
        used.update(ids)
        out[b:b + block] = ids
    return tuple(c for c in out if c is not None)


def _pressure(workers: list[WorkerState], free: dict[str, int],
              demand: dict[Need, int]) -> dict[Need, float]:
    """Backlog per free slot of each need at the start of the round (0 = no backlog)."""
    out: dict[Need, float] = {}
    for need, num in demand.items():
        supply = sum(free[w.spec.worker_id] for w in workers if w.serves(*need))
        out[need] = num / max(1, supply)
    return out
