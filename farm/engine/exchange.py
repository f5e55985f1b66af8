"""Halo exchange between the windows of a gang, once per solver step.

Every member posts, for each neighbour, its prediction on the frames they share, then
waits for the neighbours' posts of the same step. The in-process implementation below
uses a condition variable (members run in threads); the Ray runtime implements the same
interface across replicas.
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


class NoExchange:
    """A gang of one has no neighbours."""

    def swap(self, step: int, member: int, outgoing: dict[int, Any]) -> dict[int, Any]:
        if outgoing:
            raise ValueError("a single window has no neighbours to exchange with")
        return {}


class ThreadExchange:
    """Mailbox for members running as threads of one process."""

    def __init__(self, timeout: float = 3600.0):
        self._cv = threading.Condition()
        self._box: dict[tuple[int, int, int], Any] = {}
        self._error: str | None = None
        self._timeout = timeout

    def swap(self, step: int, member: int, outgoing: dict[int, Any]) -> dict[int, Any]:
        with self._cv:
            for dst, value in outgoing.items():
                self._box[(step, member, dst)] = value
            self._cv.notify_all()
            ready = lambda: self._error is not None or all(  # noqa: E731
                (step, src, member) in self._box for src in outgoing)
            if not self._cv.wait_for(ready, timeout=self._timeout):
                raise TimeoutError(f"member {member} waited {self._timeout} s at step {step}")
            if self._error is not None:
                raise ExchangeAborted(self._error)
            return {src: self._box.pop((step, src, member)) for src in outgoing}

    def abort(self, reason: str) -> None:
        with self._cv:
            self._error = reason
            self._cv.notify_all()
