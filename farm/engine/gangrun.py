"""Running a phase whose members are gangs (CFG / sequence parallel) in this process.

    PhaseTask, layout cfg x sp            member i, rank r: a thread running
    members m0 .. mk, ranks 0 .. size-1 ─>  workers[ranks[r]].denoise(order + GangRank)
                                           process groups: "<task id>/m<i>" at the store
                                           halos: rank r of every member, one exchange
                                           per lane r (windows only)

Every rank returns the same result (identical guided predictions and solvers); rank 0's
is the member's output. Ranks block in collectives, so each needs a thread of its own:
on one CPU that only tests the mechanics; with one worker per GPU it is real speed.

A failing rank aborts its process groups and the lanes' exchanges, so the others stop
at once; the task fails naming the worker of the first failure that is not an echo of
another's (farm.model.ulysses.PeerFailed, ExchangeAborted), the earliest if several.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from farm.engine.exchange import Exchange, NoExchange, ThreadExchange
from farm.engine.orders import DenoiseOrder, GangRank
from farm.sched.output import PhaseTask


class Rendezvous(Protocol):
    """Where the ranks of gangs meet: a TCP key-value store ("host:port")."""

    def address(self) -> str: ...


def is_echo(exc: BaseException) -> bool:
    """A rank failing because another did (a broken collective, an aborted exchange)."""
    return bool(getattr(exc, "gang_echo", False))


class GangFailed(RuntimeError):
    def __init__(self, worker_id: str, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.worker_id = worker_id


def gang_orders(task: PhaseTask, orders: tuple[DenoiseOrder, ...], store: str,
                timeout_s: float) -> list[list[DenoiseOrder]]:
    """orders[i] of every rank r of member i: the member's order with its GangRank."""
    lay = task.layout
    return [[replace(o, gang_rank=GangRank(lay.cfg, lay.sp, r, store, f"{task.task_id}/m{i}",
                                           timeout_s))
             for r in range(lay.size)] for i, o in enumerate(orders)]


def run_ranks(workers: Mapping[str, Any], task: PhaseTask, orders: tuple[DenoiseOrder, ...],
              prompt: Any, states: list[Any], condition: Any, store: str,
              timeout_s: float = 300.0) -> list[Any]:
    """Run every rank of every member in a thread; rank 0's result per member."""
    ranked = gang_orders(task, orders, store, timeout_s)
    size, members = task.layout.size, len(orders)
    lanes = [ThreadExchange(timeout_s) for _ in range(size)]
    results: list[list[Any]] = [[None] * size for _ in range(members)]
    failures: list[tuple[float, str, BaseException]] = []
    lock = threading.Lock()

    def rank(i: int, r: int) -> None:
        wid = task.members[i].ranks[r]
        exchange: Exchange = lanes[r] if members > 1 else NoExchange()
        try:
            results[i][r] = workers[wid].denoise(ranked[i][r], prompt, states[i], condition, exchange)
        except BaseException as exc:  # noqa: BLE001 - reported as the gang's failure
            with lock:  # when it failed: stamped by the model layer before its abort
                failures.append((getattr(exc, "gang_failed_at", time.monotonic()), wid, exc))
            for lane in lanes:
                lane.abort(f"{wid}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=rank, args=(i, r), name=f"gang-{i}-{r}", daemon=True)
               for i in range(members) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:  # the first failure that is not an echo of another rank's
        _, wid, exc = min(failures, key=lambda f: (is_echo(f[2]), f[0]))
        raise GangFailed(wid, exc) from exc
    return [results[i][0] for i in range(members)]
