"""Data-parallel toy training: one process per core, gradients averaged (torch.distributed).

On 2 cores two single-threaded processes train almost twice as fast as one process with
two threads: the toy model's tensors are small, so intra-op threads mostly wait for each
other (and stall whenever another program takes a core). Every rank holds the same
weights and draws the same global batch from the same seeded streams; rank r computes
the loss of its slice, and the averaged gradient is the global batch's gradient, so the
run follows the single-process one (up to the order of float sums):

    global batch   [ b0 b1 b2 b3 b4 b5 b6 b7 ]       the same draw on every rank
    rank 0         [ b0 b1 b2 b3 ]  -> grad_0  \
    rank 1                     [ b4 b5 b6 b7 ]  -> grad_1  -> (grad_0 + grad_1) / 2 everywhere

The group meets over Gloo through a file store in the output folder (no ports).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class Ranks:
    rank: int = 0
    world: int = 1

    def part(self, n: int) -> slice:
        """This rank's slice of a global batch of n (n divisible by world)."""
        size = n // self.world
        return slice(self.rank * size, (self.rank + 1) * size)

    def average_grads(self, module: torch.nn.Module) -> None:
        """Average the gradients of every parameter over the ranks, in one flat buffer."""
        if self.world == 1:
            return
        import torch.distributed as dist

        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    def mean(self, values: dict[str, torch.Tensor]) -> dict[str, float]:
        """The ranks' mean of each scalar (the global batch's loss, for the log)."""
        t = torch.stack([v.detach().reshape(()) for v in values.values()])
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
            t = t / self.world
        return dict(zip(values, t.tolist(), strict=True))

    def agree(self, flag: bool) -> bool:
        """Rank 0's flag on every rank (a time budget must stop every rank at one step)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0])
        dist.broadcast(t, 0)
        return bool(t.item())

    def gather(self, t: torch.Tensor, n: int) -> torch.Tensor:
        """Rows [part(n_padded)] of every rank concatenated in rank order, cut to n rows."""
        if self.world == 1:
            return t[:n]
        import torch.distributed as dist

        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t.contiguous())
        return torch.cat(out)[:n]


def exit_with(parent: int) -> None:
    """End this rank when the process that spawned it is gone (killed, say): spawned
    processes outlive their parent otherwise, and would go on writing its folder."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def init(rank: int, world: int, store_file: str) -> Ranks:
    """Join the process group (world > 1), one thread per process."""
    if world > 1:
        import torch.distributed as dist

        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{store_file}",
                                rank=rank, world_size=world)
    return Ranks(rank, world)


def close(ranks: Ranks) -> None:
    if ranks.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
