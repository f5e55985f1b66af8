"""Offload "shard": an expert's blocks sharded over the ranks of a gang (FSDP-style), the
shards kept with the open gang (PoolConfig.offload; docs/weights.md "Offload").

    ModelLoader: the expert whole in host memory, a HostExpert around it
        plan        per block of `model.blocks`: the parameters it was loaded with (not
                    the LoRA layers PEFT adds later), flattened in registration order,
                    one flat buffer per dtype (bf16 experts keep some norms in fp32)
    a phase on one GPU (no gang, or a gang of one): as "model" offload, the whole expert
        moves to the device at its forwards, the worker's other experts back to host
        memory (ModelLoader.expert)
    rank r of a gang of n = cfg x sp > 1: a ShardedExpert, built at the gang's first
        phase of the expert from the host copy, kept in `gang.shards` until it closes
        shards      per block and dtype: flat (F,) padded to (n * k,), slice r (k,)
        rest        the parameters outside the blocks and every buffer, whole
        each forward of the expert:
          model pre-hook    the expert is this thread's; the rest points at its copies
          block pre-hook    all-gather the block's shards over the gang's world group
                            (n * k,) and point its parameters at views of it; the next
                            block's all-gather starts now, overlapping this block's
                            compute (FSDP's forward prefetch)
          block post-hook   point them back at the host copy (the gathered buffer is
                            freed: at most two blocks are whole on the device, the one
                            computing and the one arriving)
          model post-hook   the rest back at the host copy; release the expert

The hooks are installed once per expert and act for the thread whose phase step runs
inside `sharded_steps` (a ContextVar, as farm.model.ulysses); any other forward of the
expert is a one-GPU one. They swap the parameters of a module the worker's other slots
may call, so the expert runs one forward at a time (a lock per forward, not per step:
phases wait for each other between steps, farm.model.speed). A gang forward holds it
through its collectives, so two gang phases of one expert at once on one worker (two
ranks of one gang, or two gangs) could each wait for a rank the other's forward blocks:
that is refused (`HostExpert.claimed`).

Step caches stay exact: diffusers' cache hooks replace a block's `forward`, so a skipped
block is still called and still gathers; every rank calls every block of every forward
in order (checked: a rank that did not fails instead of pairing the wrong collectives).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Generator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

from farm.model.ulysses import wait

# Parameters start at multiples of this in their flat buffer: GPU kernels (cuBLAS,
# vectorised loads) want aligned pointers. Wan's sizes are multiples of 8 elements, so
# it pads nothing there (nor in the tiny models at float32).
ALIGN_BYTES = 16


@dataclass(frozen=True, slots=True)
class Slot:
    """One parameter of a block: its module and name, and its place in the flat buffer."""

    owner: torch.nn.Module
    name: str
    shape: torch.Size
    offset: int
    numel: int

    @property
    def param(self) -> torch.nn.Parameter:
        return self.owner._parameters[self.name]


@dataclass(frozen=True, slots=True)
class Group:
    """A block's parameters of one dtype: `numel` elements of flat buffer (unpadded)."""

    dtype: torch.dtype
    slots: tuple[Slot, ...]
    numel: int


def plan_block(block: torch.nn.Module) -> tuple[Group, ...]:
    """The block's parameters in registration order, by dtype in order of appearance."""
    slots: dict[torch.dtype, list[Slot]] = {}
    ends: dict[torch.dtype, int] = {}
    for name, p in block.named_parameters():
        path, _, attr = name.rpartition(".")
        align = max(1, ALIGN_BYTES // p.element_size())
        at = -(-ends.get(p.dtype, 0) // align) * align
        slots.setdefault(p.dtype, []).append(
            Slot(block.get_submodule(path), attr, p.shape, at, p.numel()))
        ends[p.dtype] = at + p.numel()
    return tuple(Group(dtype, tuple(s), ends[dtype]) for dtype, s in slots.items())


class HostExpert:
    """An expert under "shard" offload: the module in host memory, its block plan, and
    the hooks that place it for each forward (`offload()` moves it back out, as the
    "model" offload hook's does)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, name: str):
        blocks = getattr(model, "blocks", None)
        if not isinstance(blocks, torch.nn.ModuleList) or not len(blocks):
            raise ValueError(f"offload 'shard' shards a transformer's `blocks`; "
                             f"{type(model).__name__} has none: use offload 'model'")
        self.model, self.device, self.name = model, torch.device(device), name
        self.plan = tuple(plan_block(b) for b in blocks)
        self.rest = _rest(model, {id(s.param) for groups in self.plan for g in groups
                                  for s in g.slots})
        self.builds = 0  # ShardedExperts built from it (one per open gang using it)
        self._whole = False  # moved in whole (a one-GPU forward) and not out since
        self._lock = threading.Lock()  # one forward at a time
        self._claim = threading.Lock()
        self._gang: str | None = None  # the gang phase running on it
        self._held = threading.local()  # .sharded: this thread's forward, if in one
        self._install()

    def _install(self) -> None:
        self.model.register_forward_pre_hook(self._enter)
        self.model.register_forward_hook(self._exit, always_call=True)
        for i, block in enumerate(self.model.blocks):
            block.register_forward_pre_hook(functools.partial(self._gather, i))
            block.register_forward_hook(functools.partial(self._drop, i), always_call=True)

    def live_rest(self) -> list[torch.Tensor]:
        return [owner._buffers[attr] if buffer else owner._parameters[attr]
                for owner, attr, buffer in self.rest]

    def offload(self) -> None:
        """The whole expert back to host memory (another expert is asked for)."""
        with self._lock:
            self.model.to("cpu")
            self._whole = False

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock:
            yield

    @contextlib.contextmanager
    def claimed(self, who: str) -> Iterator[None]:
        """Hold the expert for one gang phase (`who`: its rank and gang)."""
        with self._claim:
            if self._gang is not None:
                raise ValueError(f"offload 'shard': {who} cannot run expert {self.name} on "
                                 f"this worker ({self.device}) while {self._gang} runs it: each "
                                 "would hold the expert through collectives the other's peers "
                                 "wait on. Give every rank of a gang its own worker and a "
                                 "worker one gang phase at a time, or use offload 'model'")
            self._gang = who
        try:
            yield
        finally:
            with self._claim:
                self._gang = None

    # ---- hooks -----------------------------------------------------------------------

    def _enter(self, module, args) -> None:
        sharded = _ACTIVE.get()
        if sharded is not None and sharded.host is not self:  # a gang phase of another
            sharded = None
        self._lock.acquire()
        try:
            if sharded is None:  # as "model" offload: moved in at the first forward
                if not self._whole or next(self.model.parameters()).device != self.device:
                    self.model.to(self.device)
                    self._whole = True
            else:
                sharded.enter()
        except BaseException:
            self._lock.release()
            raise
        self._held.sharded, self._held.on = sharded, True

    def _exit(self, module, args, output) -> None:
        if not getattr(self._held, "on", False):  # a hook before ours failed
            return
        sharded, self._held.sharded, self._held.on = self._held.sharded, None, False
        try:
            if sharded is not None:
                sharded.exit(complete=output is not None)
        finally:
            self._lock.release()

    def _gather(self, index: int, block, args) -> None:
        sharded = getattr(self._held, "sharded", None)
        if sharded is not None:
            sharded.gather(index)

    def _drop(self, index: int, block, args, output) -> None:
        sharded = getattr(self._held, "sharded", None)
        if sharded is not None:
            sharded.drop(index)


def _rest(model: torch.nn.Module, planned: set[int]) -> tuple[tuple[Any, str, bool], ...]:
    """The rest as loaded, by place (module, name, is a buffer): the parameters outside
    the plan and every buffer (a buffer is a new tensor after each move; its place stays)."""
    places = [(name, False) for name, p in model.named_parameters() if id(p) not in planned]
    places += [(name, True) for name, _ in model.named_buffers()]
    out = []
    for name, buffer in places:
        path, _, attr = name.rpartition(".")
        out.append((model.get_submodule(path), attr, buffer))
    return tuple(out)


class ShardedExpert:
    """Rank `rank` of `size`'s shards of one expert on `device`, gathered over `group`
    (the gang's world group: every rank, in gang order)."""

    def __init__(self, host: HostExpert, group: Any, rank: int, size: int,
                 device: torch.device):
        self.host, self.group, self.rank, self.size = host, group, rank, size
        self.device = torch.device(device)
        with host.locked():  # a forward in another thread may be moving the module
            self.shards = [[self._slice(g) for g in groups] for groups in host.plan]
            # detach().to(): a copy on another device, the tensor itself on the host's
            self.rest = [t.detach().to(self.device) for t in host.live_rest()]
        host.builds += 1
        self._saved: list[torch.Tensor] = []  # the rest's host data during a forward
        self._whole: dict[int, list[tuple[torch.nn.Parameter, torch.Tensor]]] = {}
        self._next = 0  # the block every rank gathers next
        # The next block's all-gather, started when this one's was done (FSDP's forward
        # prefetch): (block, [(group, buffer, work)]), waited for at its pre-hook.
        self._ahead: tuple[int, list[tuple[Group, torch.Tensor, Any]]] | None = None
        self.peak_whole = 0  # most blocks whole on the device at once (2: one prefetched)

    def _slice(self, group: Group) -> torch.Tensor:
        """My slice (k,) of the group's flat parameters, padded to (size * k,) with zeros."""
        k = math.ceil(group.numel / self.size)
        lo, hi = self.rank * k, (self.rank + 1) * k
        out = torch.zeros(k, dtype=group.dtype, device=self.device)
        for s in group.slots:  # copies only the pieces in my slice (no whole flat buffer)
            a, b = max(lo, s.offset), min(hi, s.offset + s.numel)
            if a < b:
                out[a - lo:b - lo].copy_(s.param.detach().reshape(-1)[a - s.offset:b - s.offset])
        return out

    def device_bytes(self) -> int:
        """Bytes of the blocks' shards on the device (ceil(F / size) elements a block)."""
        return sum(t.untyped_storage().nbytes() for groups in self.shards for t in groups)

    def block_bytes(self, index: int) -> int:
        return sum(t.untyped_storage().nbytes() for t in self.shards[index])

    def rest_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.rest)

    def enter(self) -> None:
        # 1. what PEFT added after loading (LoRA layers): whole, kept on the device (first:
        #    the one step here that may fail, before anything is swapped)
        live = self.host.live_rest()
        known = {id(t) for t in live}
        known.update(id(s.param) for groups in self.host.plan for g in groups for s in g.slots)
        for p in self.host.model.parameters():
            if id(p) not in known and p.device != self.device:
                p.data = p.data.to(self.device)
        # 2. the rest at its device copies (the host copies back at exit)
        self._saved = [t.data for t in live]
        for t, copy in zip(live, self.rest, strict=True):
            t.data = copy
        self._next = 0

    def exit(self, complete: bool) -> None:
        for index in list(self._whole):  # a block a failure left whole
            self.drop(index)
        ahead, self._ahead = self._ahead, None
        if ahead is not None:  # a failure before the prefetched block: finish, then free
            for _, _, work in ahead[1]:
                wait(work)
        for t, saved in zip(self.host.live_rest(), self._saved, strict=True):
            t.data = saved
        self._saved = []
        if complete and self._next != 0:
            raise RuntimeError(f"offload 'shard': a forward of expert {self.host.name} ended "
                               f"before block {self._next}; every rank must call every block "
                               "of every forward (a step cache that skips whole blocks cannot "
                               "run sharded)")

    def gather(self, index: int) -> None:
        if index != self._next:
            raise RuntimeError(f"offload 'shard': block {index} of expert {self.host.name} "
                               f"was called where block {self._next} was due; every rank "
                               "must call every block of every forward, in order")
        self._next = (index + 1) % len(self.shards)
        # 1. this block's gather: the one prefetched at the last block, or started now
        ahead, self._ahead = self._ahead, None
        pending = ahead[1] if ahead is not None and ahead[0] == index else self._start(index)
        # 2. the next block's gather starts before this block computes: its transfer
        #    overlaps this block's compute (every rank issues the same collectives in the
        #    same order, so the pairing holds)
        if index + 1 < len(self.shards):
            self._ahead = (index + 1, self._start(index + 1))
        saved = []
        for group, full, work in pending:
            # 3. every rank's slice arrived: (size * k,), the flat parameters and padding
            wait(work)
            # 4. the block's parameters become views of it: (numel,) -> their shapes
            for s in group.slots:
                p = s.param
                saved.append((p, p.data))
                p.data = full[s.offset:s.offset + s.numel].view(s.shape)
        self._whole[index] = saved
        self.peak_whole = max(self.peak_whole, len(self._whole) + (self._ahead is not None))

    def _start(self, index: int) -> list[tuple[Group, torch.Tensor, Any]]:
        """Start the all-gathers of block `index`: (group, its (size * k,) buffer, work)."""
        out = []
        for group, shard in zip(self.host.plan[index], self.shards[index], strict=True):
            full = torch.empty(shard.numel() * self.size, dtype=shard.dtype, device=self.device)
            out.append((group, full, self.group._allgather_base(full, shard)))
        return out

    def drop(self, index: int) -> None:
        for p, data in self._whole.pop(index, ()):
            p.data = data


_ACTIVE: ContextVar[ShardedExpert | None] = ContextVar("reelfarm_shard", default=None)


def sharded_steps(steps: Generator, host: HostExpert, gang: Any, name: str) -> Generator:
    """Run a phase generator as rank `gang.spec.rank` of its gang on its shards of
    expert `name` (built at the gang's first phase of it, kept in gang.shards)."""
    if gang.world is None:
        raise ValueError(f"gang {gang.spec.prefix} was formed without its world group: "
                         "every rank of a gang under offload 'shard' joins it with shard=True")
    with host.claimed(f"rank {gang.spec.rank} of gang {gang.spec.prefix}"):
        sharded = gang.shards.get(name)
        if sharded is None:
            sharded = gang.shards[name] = ShardedExpert(host, gang.world, gang.spec.rank,
                                                        gang.spec.size, gang.device)
        # a one-GPU phase may have left the whole expert on the device: this phase
        # needs only its shards there
        host.offload()
        value = None
        while True:
            token = _ACTIVE.set(sharded)
            try:
                item = steps.send(value)
            except StopIteration as done:
                return done.value
            finally:
                _ACTIVE.reset(token)
            value = yield item
