"""Halo exchange between the windows of a gang, once per solver step.

Every member posts, for each neighbour, its prediction on the frames they share, then
waits for the neighbours' posts of the same step. In process, the executor steps a gang's
members together without an exchange (see executor.run_gang); members in separate
processes (the Ray runtime) swap through an implementation of this interface.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Exchange(Protocol):
    def swap(self, step: int, member: int, outgoing: dict[int, Any]) -> dict[int, Any]:
        """Send `outgoing[j]` to member j; return what each member j sent to me."""
        ...


class ExchangeAborted(RuntimeError):
    """Another member of the gang failed; this member stops too."""

    # An echo of another member's failure (farm.engine.gangrun blames the original).
    gang_echo = True


class NoExchange:
    """A gang of one has no neighbours."""

    def swap(self, step: int, member: int, outgoing: dict[int, Any]) -> dict[int, Any]:
        if outgoing:
            raise ValueError("a single window has no neighbours to exchange with")
        return {}


class ThreadExchange:
    """Halos between members running in threads of this process (blocking), e.g. the
    ranks of one lane of a gang (rank r of every window swaps with rank r of its
    neighbours). Neighbours are symmetric: I receive from those I send to."""

    def __init__(self, timeout_s: float = 3600.0):
        self.timeout_s = timeout_s
        self._box: dict[tuple[int, int, int], Any] = {}
        self._cond = threading.Condition()
        self._error: str | None = None

    def swap(self, step: int, member: int, outgoing: dict[int, Any]) -> dict[int, Any]:
        keys = [(step, src, member) for src in sorted(outgoing)]
        with self._cond:
            for dst, value in outgoing.items():
                self._box[(step, member, dst)] = value
            self._cond.notify_all()
            arrived = self._cond.wait_for(
                lambda: self._error is not None or all(k in self._box for k in keys),
                self.timeout_s)
            if self._error is not None:
                raise ExchangeAborted(f"gang aborted: {self._error}")
            if not arrived:
                raise ExchangeAborted(f"no halos from members {sorted(outgoing)} "
                                      f"after {self.timeout_s} s")
            return {src: self._box.pop((s, src, dst)) for s, src, dst in keys}

    def abort(self, reason: str) -> None:
        """Every waiting member raises ExchangeAborted now."""
        with self._cond:
            self._error = reason
            self._cond.notify_all()
