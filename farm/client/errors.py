"""Typed exceptions of the SDK, one per gRPC status code the API uses.

Every call raises an ApiError subclass, never a bare grpc.RpcError. InvalidArgumentError
carries the server's google.rpc.BadRequest as `violations` [(field path, description)].
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


class ApiError(Exception):
    """A call failed; `code` is the gRPC status code, `details` the rich error details."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, details: list | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidArgumentError(ApiError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def violations(self) -> list[tuple[str, str]]:
        return [(v.field, v.description) for d in self.details
                if isinstance(d, error_details_pb2.BadRequest) for v in d.field_violations]


class NotFoundError(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class PermissionDeniedError(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhaustedError(ApiError):
    """A queue or quota is full; retry later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(ApiError):
    """The server could not be reached (after the SDK's own retries, where it retries)."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class CallCancelledError(ApiError):
    code = grpc.StatusCode.CANCELLED


class InternalError(ApiError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgumentError, NotFoundError, PermissionDeniedError, UnauthenticatedError,
    ResourceExhaustedError, FailedPreconditionError, UnavailableError, DeadlineExceededError,
    CallCancelledError, InternalError)}
_DETAIL_TYPES = (error_details_pb2.BadRequest, error_details_pb2.PreconditionFailure,
                 error_details_pb2.QuotaFailure, error_details_pb2.ErrorInfo)


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """The typed exception for a failed call (sync or grpc.aio)."""
    code = err.code()
    cls = _BY_CODE.get(code, ApiError)
    exc = cls(f"{code.name}: {err.details()}", _details(err.trailing_metadata() or ()))
    if cls is ApiError:
        exc.code = code
    return exc


def _details(metadata: Iterable) -> list:
    for key, value in metadata:
        if key == _DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            out = []
            for any_detail in status.details:
                for kind in _DETAIL_TYPES:
                    if any_detail.Is(kind.DESCRIPTOR):
                        msg = kind()
                        any_detail.Unpack(msg)
                        out.append(msg)
            return out
    return []
