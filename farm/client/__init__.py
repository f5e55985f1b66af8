"""The reelfarm Python SDK over the gRPC API (sync and asyncio).

    from farm.client import Client
    with Client("127.0.0.1:50051", token="...") as client:
        film = client.submit("examples/trailer.yaml")
        for frame in film.frames():      # as they render, in film order, resumable
            ...
        film.download("trailer.mp4")

Imports no torch: a studio tool can use it without the farm's model stack.
"""

from farm.api.chunks import Frame
from farm.client.aio import AsyncClient, AsyncFilmHandle
from farm.client.errors import (
    ApiError,
    CallCancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
)
from farm.client.sync import Client, FilmHandle

__all__ = [
    "ApiError", "AsyncClient", "AsyncFilmHandle", "CallCancelledError", "Client",
    "DeadlineExceededError", "FailedPreconditionError", "FilmHandle", "Frame", "InternalError",
    "InvalidArgumentError", "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError",
    "UnauthenticatedError", "UnavailableError",
]
