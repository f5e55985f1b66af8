"""A gang inside a segment: torch.distributed process groups for CFG and Ulysses parallel.

    a segment's gang: cfg x sp ranks, rank = cfg_rank * sp + sp_rank
      SP group    (ranks with my cfg_rank)   Ulysses all-to-alls around self-attention
      CFG group   (ranks with my sp_rank)    all-gather of the (cond, uncond) predictions
      world group (every rank, by rank)      offload "shard" only: the per-block
                                             all-gathers of the experts' shards
                                             (farm.model.shard, kept in `shards`)

Ranks meet at a TCP key-value store hosted by the runtime (`StoreServer`: the in-process
executor's owner on loopback, the Ray director on its node), each gang under its own key
prefix. Backend: NCCL on CUDA devices, Gloo otherwise. Groups are c10d ProcessGroup
objects of their own (no global `init_process_group`), so one process can hold ranks of
several gangs at once (threads of the in-process runtime, slots of a pool replica).

A rank that fails aborts its groups, so its peers' pending collectives fail at once
("connection closed by peer") rather than at the timeout: the whole gang fails and the
scheduler retries the unit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from farm.engine.orders import GangRank
from farm.model.ulysses import PeerFailed, SeqGroup, valid_degrees, wait

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class StoreServer:
    """The rendezvous store of a runtime: a TCPStore master on `host`, port from the OS."""

    def __init__(self, host: str = "127.0.0.1", timeout_s: float = 300.0):
        self.host = host
        self._store = dist.TCPStore(host, 0, is_master=True, wait_for_workers=False,
                                    timeout=timedelta(seconds=timeout_s))

    def address(self) -> str:
        return f"{self.host}:{self._store.port}"


def check_gang(model, rank: GangRank, guidance: float) -> None:
    """Reject a layout the model cannot run, before anyone waits for anyone."""
    heads = getattr(model.config, "num_attention_heads", None)
    if heads is None and rank.sp != 1:  # the S2V adapter (farm.model.s2v): CFG parallel only
        raise ValueError("Ulysses sequence parallel is not implemented for "
                         f"{type(model).__name__}; "
                         f"valid degrees: 1 (got {rank.sp})")
    if heads is not None and (rank.sp < 1 or heads % rank.sp):
        raise ValueError(f"Ulysses degree {rank.sp} must divide the {heads} attention heads of "
                         f"this model; valid degrees: {valid_degrees(heads)}")
    if rank.cfg not in (1, 2):
        raise ValueError(f"CFG parallel degree must be 1 or 2, got {rank.cfg}")
    if rank.cfg == 2 and guidance <= 1.0:
        raise ValueError(f"CFG parallel needs guidance > 1 (two forwards per step), got {guidance}")
    if not 0 <= rank.rank < rank.size:
        raise ValueError(f"rank {rank.rank} outside a gang of {rank.size}")


class Gang:
    """This rank's process groups for one phase (or, kept open, for the unit's next
    phases on the same ranks); `close()` (or `abort()`) when done. `shard`: this rank's
    worker shards its experts over the gang (offload "shard"): every rank must."""

    def __init__(self, rank: GangRank, device: torch.device, shard: bool = False):
        self.spec, self.device = rank, torch.device(device)
        self._groups: list = []
        self.seq: SeqGroup | None = None
        self._cfg = None
        self.world = None
        # expert name -> this rank's shards of it (farm.model.shard.ShardedExpert), built
        # at the gang's first phase of that expert, freed when the gang closes
        self.shards: dict[str, Any] = {}
        try:
            self._join(rank, self.device, shard)
        except BaseException:
            self.abort()
            raise

    def _join(self, rank: GangRank, device: torch.device, shard: bool) -> None:
        timeout = timedelta(seconds=rank.timeout_s)
        host, port = rank.store.rsplit(":", 1)
        # 1. the store (a client of the runtime's server); every rank's offload mode
        store = dist.TCPStore(host, int(port), is_master=False, timeout=timeout)
        _roll_call(store, rank, shard, timeout)
        # 2. SP group, CFG group, world group: every rank creates them in the same order
        if rank.sp > 1:
            pg = self._group(store, f"{rank.prefix}/sp{rank.cfg_rank}", rank.sp_rank, rank.sp,
                             device, host, timeout)
            self.seq = SeqGroup(pg, rank.sp_rank, rank.sp)
        if rank.cfg > 1:
            self._cfg = self._group(store, f"{rank.prefix}/cfg{rank.sp_rank}", rank.cfg_rank,
                                    rank.cfg, device, host, timeout)
        if shard:
            # A gang of one dimension already has it (its SP or CFG group, ranks in gang
            # order): a communicator of its own costs an NCCL init and its buffers.
            self.world = (self.seq.pg if rank.sp == rank.size and self.seq is not None
                          else self._cfg if rank.cfg == rank.size
                          else self._group(store, f"{rank.prefix}/world", rank.rank, rank.size,
                                           device, host, timeout))

    def _group(self, store, prefix: str, rank: int, size: int, device: torch.device, host: str,
               timeout: timedelta):
        store = dist.PrefixStore(prefix, store)
        try:
            return self._connect(store, rank, size, device, host, timeout)
        except RuntimeError as exc:  # a peer never came, or left while connecting
            raise PeerFailed(f"gang rendezvous {prefix} failed: {exc}") from exc

    def _connect(self, store, rank: int, size: int, device: torch.device, host: str,
                 timeout: timedelta):
        if device.type == "cuda":
            pg = dist.ProcessGroupNCCL(store, rank, size)
        else:
            opts = dist.ProcessGroupGloo._Options()
            opts._timeout = timeout
            # Loopback rendezvous: keep gloo's sockets on loopback too.
            opts._devices = [dist.ProcessGroupGloo.create_device(hostname=host) if host in LOOPBACK
                             else dist.ProcessGroupGloo.create_default_device()]
            pg = dist.ProcessGroupGloo(store, rank, size, opts)
        self._groups.append(pg)
        return pg

    @property
    def runs_uncond(self) -> bool:
        """Whether this rank's forward is the unconditional one (CFG rank 1)."""
        return self.spec.cfg == 2 and self.spec.cfg_rank == 1

    def cfg_gather(self, mine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond, uncond) on every rank, from CFG rank 0's and rank 1's predictions."""
        assert self._cfg is not None
        parts = [torch.empty_like(mine) for _ in range(2)]
        wait(self._cfg.allgather([parts], [mine.contiguous()]))
        return parts[0], parts[1]

    def close(self) -> None:
        for pg in self._groups:
            pg.shutdown()
        self._drop()

    def abort(self) -> None:
        """Fail the peers' pending collectives now (this rank is failing)."""
        for pg in self._groups:
            try:
                pg.abort()
            except Exception:  # noqa: BLE001 - already broken; nothing more to do
                pass
        self._drop()

    def _drop(self) -> None:
        # Gloo closes its sockets only when a group is destroyed (abort and shutdown do
        # not), and a closed socket is what fails the peers at once: drop every reference.
        # The shards go too: their device memory is what closing the gang frees.
        self.seq = self._cfg = self.world = None
        self._groups.clear()
        self.shards.clear()


def _roll_call(store, rank: GangRank, shard: bool, timeout: timedelta) -> None:
    """Every rank's offload mode, met at the store before any group forms: a gang shards
    its experts only if all its ranks do (a rank that did not would never join the
    per-block all-gathers, and its peers' would pair with its other collectives)."""
    calls = dist.PrefixStore(f"{rank.prefix}/offload", store)
    calls.set(str(rank.rank), "shard" if shard else "whole")
    keys = [str(r) for r in range(rank.size)]
    try:
        calls.wait(keys, timeout)
    except RuntimeError as exc:  # a peer never came
        raise PeerFailed(f"gang rendezvous {rank.prefix} failed: {exc}") from exc
    modes = [calls.get(k).decode() for k in keys]
    if len(set(modes)) > 1:
        sharding = [r for r, m in enumerate(modes) if m == "shard"]
        raise ValueError(f"gang {rank.prefix}: ranks {sharding} shard their experts (offload "
                         f"'shard'), the others do not; a gang's ranks must share their "
                         "offload mode (workers of one pool)")
