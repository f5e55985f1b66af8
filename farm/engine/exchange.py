"""Halo exchange between the windows of a gang, once per solver step.

Every member posts, for each neighbour, its prediction on the frames they share, then
waits for the neighbours' posts of the same step. In process, the executor steps a gang's
members together without an exchange (see executor.run_gang); members in separate
processes (the Ray runtime) swap through an implementation of this interface.
"""

from __future__ import annotations

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
