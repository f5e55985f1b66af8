"""Running a phase whose members are gangs (CFG / sequence parallel) in this process.

    PhaseTask, layout cfg x sp            member i, rank r: a thread running
    members m0 .. mk, ranks 0 .. size-1 ─>  workers[ranks[r]].denoise(order + GangRank)
                                           process groups: "<gang key>/m<i>" at the store
                                           (the phase that formed them: a unit's next
                                           phase on the same ranks reuses them)
                                           halos: rank r of every member, one exchange
                                           per lane r (windows only)

Every rank returns the same result (identical guided predictions and solvers); rank 0's
is the member's output. Ranks block in collectives, so each needs a thread of its own:
on one CPU that only tests the mechanics; with one worker per GPU it is real speed.

A band-parallel decode (DecodeTask.band_workers) runs the same way: rank r of k in a
thread, its bands' columns all-gathered in "<task id>/bands"; rank 0 streams the frames.

A failing rank aborts its process groups and the lanes' exchanges, so the others stop
at once; the task fails naming the worker of the first failure that is not an echo of
another's (farm.model.ulysses.PeerFailed, ExchangeAborted), the earliest if several.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from farm.engine.exchange import Exchange, NoExchange, ThreadExchange
from farm.engine.orders import DecodeOrder, DenoiseOrder, GangRank
from farm.sched.output import DecodeTask, PhaseTask


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
    lay, name = task.layout, task.gang_key or task.task_id  # reused gangs keep their name
    return [[replace(o, gang_rank=GangRank(lay.cfg, lay.sp, r, store, f"{name}/m{i}", timeout_s))
             for r in range(lay.size)] for i, o in enumerate(orders)]


def run_ranks(workers: Mapping[str, Any], task: PhaseTask, orders: tuple[DenoiseOrder, ...],
              prompt: Any, states: list[Any], condition: Any, store: str,
              timeout_s: float = 300.0) -> list[Any]:
    """Run every rank of every member in a thread; rank 0's result per member."""
    ranked = gang_orders(task, orders, store, timeout_s)
    size, members = task.layout.size, len(orders)
    lanes = [ThreadExchange(timeout_s) for _ in range(size)]

    def rank(i: int, r: int) -> Any:
        exchange: Exchange = lanes[r] if members > 1 else NoExchange()
        return workers[task.members[i].ranks[r]].denoise(ranked[i][r], prompt, states[i],
                                                          condition, exchange)
    jobs = [(task.members[i].ranks[r], lambda i=i, r=r: rank(i, r))
            for i in range(members) for r in range(size)]
    results = run_threads(jobs, lambda why: [lane.abort(why) for lane in lanes])
    return [results[i * size] for i in range(members)]


def band_orders(task: DecodeTask, order: DecodeOrder, store: str,
                timeout_s: float) -> list[DecodeOrder]:
    """The decode's order for each of its ranks (worker_id, then band_workers)."""
    ranks = 1 + len(task.band_workers)
    return [replace(order,
                    band_rank=GangRank(1, ranks, r, store, f"{task.task_id}/bands", timeout_s))
            for r in range(ranks)]


def run_band_ranks(workers: Mapping[str, Any], task: DecodeTask, order: DecodeOrder,
                   decode: Callable[[Any, DecodeOrder], Any], store: str,
                   timeout_s: float = 300.0) -> Any:
    """A band-parallel decode: every rank in a thread, `decode(worker, order)` each (rank
    0 streams the frames); rank 0's result."""
    ranked = band_orders(task, order, store, timeout_s)
    ids = (task.worker_id, *task.band_workers)
    jobs = [(wid, lambda wid=wid, o=o: decode(workers[wid], o))
            for wid, o in zip(ids, ranked, strict=True)]
    return run_threads(jobs, lambda why: None)[0]


def run_threads(jobs: list[tuple[str, Callable[[], Any]]],
                abort: Callable[[str], Any]) -> list[Any]:
    """Each (worker id, job) in a thread of its own (ranks block in collectives); their
    results in order. A failing job calls `abort` (so peers blocked elsewhere stop) and
    the whole fails naming the worker of the first failure that is not an echo."""
    results: list[Any] = [None] * len(jobs)
    failures: list[tuple[float, str, BaseException]] = []
    lock = threading.Lock()

    def run(k: int) -> None:
        wid, job = jobs[k]
        try:
            results[k] = job()
        except BaseException as exc:  # noqa: BLE001 - reported as the gang's failure
            with lock:  # when it failed: stamped by the model layer before its abort
                failures.append((getattr(exc, "gang_failed_at", time.monotonic()), wid, exc))
            abort(f"{wid}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(k,), name=f"gang-{jobs[k][0]}", daemon=True)
               for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:  # the first failure that is not an echo of another rank's
        _, wid, exc = min(failures, key=lambda failure: (is_echo(failure[2]), failure[0]))
        raise GangFailed(wid, exc) from exc
    return results
