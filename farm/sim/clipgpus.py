"""GPUs of the clip baselines on nodes (pure): where a group of a layout goes, whether
its Ulysses groups span nodes, and whether it is a group formed anew.

Placement is best fit, one Ulysses group (the sp ranks of one CFG half) at a time: the
node with the fewest free GPUs that still holds the group, lowest GPU ids first; a group
no node holds takes the nodes with the most free GPUs first (and spans them, paying the
inter-node all-to-all: farm.sim.costs.straddle_ratio). The same rule fixes the static
groups of a fixed-G baseline (placed one after another on the empty fleet).
"""

from __future__ import annotations

from farm.sched.output import Layout


class Gpus:
    def __init__(self, gpus: int, node_gpus: int):
        self.node_gpus = node_gpus
        self._free = set(range(gpus))
        # GPU -> the group it last ran in (a planner reusing it forms no new group)
        self._last: dict[int, frozenset[int]] = {}

    @property
    def free(self) -> int:
        return len(self._free)

    def node(self, gpu: int) -> int:
        return gpu // self.node_gpus

    def find(self, layout: Layout, straddle: bool = True) -> tuple[int, ...] | None:
        """Free GPUs for `layout` (rank order: CFG half, then Ulysses rank), or None."""
        left, out = set(self._free), []
        for _ in range(layout.cfg):
            ids = self._one_group(left, layout.sp, straddle)
            if ids is None:
                return None
            left -= set(ids)
            out += ids
        return tuple(out)

    def _one_group(self, left: set[int], sp: int, straddle: bool) -> list[int] | None:
        if len(left) < sp:
            return None
        nodes: dict[int, list[int]] = {}
        for g in sorted(left):
            nodes.setdefault(self.node(g), []).append(g)
        fits = [n for n, ids in nodes.items() if len(ids) >= sp]
        if sp <= self.node_gpus and fits:
            best = min(fits, key=lambda n: (len(nodes[n]), n))
            return nodes[best][:sp]
        if sp <= self.node_gpus and not straddle:
            return None
        order = sorted(nodes, key=lambda n: (-len(nodes[n]), n))
        return [g for n in order for g in nodes[n]][:sp]

    def straddles(self, ids: tuple[int, ...], layout: Layout) -> bool:
        sp = layout.sp
        return any(len({self.node(g) for g in ids[c * sp:(c + 1) * sp]}) > 1
                   for c in range(layout.cfg))

    def forms(self, ids: tuple[int, ...]) -> bool:
        """Whether these GPUs did not all run last in exactly this group."""
        group = frozenset(ids)
        return len(ids) > 1 and any(self._last.get(g) != group for g in ids)

    def take(self, ids: tuple[int, ...], runs: bool = True) -> None:
        """Mark busy; `runs` False: only held while a wave is planned."""
        self._free -= set(ids)
        if runs:
            for g in ids:
                self._last[g] = frozenset(ids)

    def release(self, ids: tuple[int, ...]) -> None:
        self._free |= set(ids)


def static_groups(gpus: int, node_gpus: int, layout: Layout,
                  straddle: bool) -> list[tuple[tuple[int, ...], bool]]:
    """The fixed groups of a fixed-layout baseline: (GPUs, spans nodes) each."""
    pool, out = Gpus(gpus, node_gpus), []
    while (ids := pool.find(layout, straddle)) is not None:
        out.append((ids, pool.straddles(ids, layout)))
        pool.take(ids)
    return out
