"""Domain errors of the director; the API layer maps each to one gRPC status code."""

from __future__ import annotations


class DirectorError(Exception):
    """Base class; `str(err)` is safe to show to the caller."""


class NotFound(DirectorError):
    """The named resource does not exist, or is another tenant's."""


class FilmNotFound(NotFound):
    pass


class PermissionDenied(DirectorError):
    pass


class ResourceExhausted(DirectorError):
    """A queue or quota is full; retry later."""


class FailedPrecondition(DirectorError):
    """The film is not in a state that allows the request (e.g. no mp4 before success)."""
