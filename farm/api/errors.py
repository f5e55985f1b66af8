"""Errors of the API layer itself (the director's own are in farm.director.errors)."""

from __future__ import annotations

from farm.director.errors import DirectorError, FailedPrecondition, NotFound
from farm.spec.errors import FieldError


class InvalidArgument(DirectorError):
    """A request was rejected; `violations` lists every bad field by request path."""

    def __init__(self, violations: list[FieldError] | tuple[FieldError, ...]):
        self.violations = tuple(violations)
        super().__init__("; ".join(str(v) for v in self.violations))


class Unauthenticated(DirectorError):
    """No bearer token, or one the server does not know."""


class ModelNotServed(FailedPrecondition):
    """The film asks for a model this server does not serve."""

    def __init__(self, model: str, served: list[str]):
        self.model, self.served = model, served
        super().__init__(f"this server does not serve model {model!r}; "
                         f"it serves: {', '.join(served)}")


class MediaNotFound(NotFound):
    """No media of that name that the caller uploaded."""
