"""Halo exchange for a gang whose windows run on different replicas.

One mailbox actor per gang phase, created by the director's executor and named after
the task; every member posts its overlap predictions for each neighbour and awaits
theirs, step by step. If any member fails, the executor aborts the mailbox and every
waiting member fails fast instead of hanging.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray

NAMESPACE = "reelfarm"


@ray.remote(num_cpus=0)
class HaloMailbox:
    def __init__(self, timeout_s: float = 3600.0):
        self.box: dict[tuple[int, int, int], Any] = {}
        self.ready: dict[tuple[int, int, int], asyncio.Event] = {}
        self.error: str | None = None
        self.timeout_s = timeout_s

    def _event(self, key: tuple[int, int, int]) -> asyncio.Event:
        return self.ready.setdefault(key, asyncio.Event())

    async def put(self, step: int, src: int, dst: int, value: Any) -> None:
        self.box[(step, src, dst)] = value
        self._event((step, src, dst)).set()

    async def get(self, step: int, src: int, dst: int) -> Any:
        key = (step, src, dst)
        event = self._event(key)
        await asyncio.wait_for(event.wait(), self.timeout_s)
        if self.error is not None:
            raise RuntimeError(f"gang aborted: {self.error}")
        self.ready.pop(key, None)
        return self.box.pop(key)

    async def abort(self, reason: str) -> None:
        self.error = reason
        for event in self.ready.values():
            event.set()


def create_mailbox(name: str) -> Any:
    return HaloMailbox.options(name=name, namespace=NAMESPACE).remote()


class MailboxExchange:
    """The Exchange of a member running in a pool replica (blocking)."""

    def __init__(self, name: str):
        self.mailbox = ray.get_actor(name, namespace=NAMESPACE)

    def swap(self, step: int, member: int, outgoing: dict[int, Any]) -> dict[int, Any]:
        ray.get([self.mailbox.put.remote(step, member, dst, v) for dst, v in outgoing.items()])
        srcs = sorted(outgoing)
        got = ray.get([self.mailbox.get.remote(step, src, member) for src in srcs])
        return dict(zip(srcs, got, strict=True))
