"""Domain errors -> google.rpc.Status: one table of codes, plus rich details where a
client can act on them (google.rpc.BadRequest lists every field violation).

No grpc here, so every adapter sends the same statuses: grpc.server through
grpc_status.rpc_status.to_status, a Ray Serve ingress through its gRPC context.
"""

from __future__ import annotations

from google.rpc import code_pb2, error_details_pb2, status_pb2

from farm.api.errors import InvalidArgument, ModelNotServed, Unauthenticated
from farm.director.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)

# First match wins: subclasses before their bases.
CODES: tuple[tuple[type[Exception], int], ...] = (
    (InvalidArgument, code_pb2.INVALID_ARGUMENT),
    (Unauthenticated, code_pb2.UNAUTHENTICATED),
    (NotFound, code_pb2.NOT_FOUND),
    (PermissionDenied, code_pb2.PERMISSION_DENIED),
    (ResourceExhausted, code_pb2.RESOURCE_EXHAUSTED),
    (FailedPrecondition, code_pb2.FAILED_PRECONDITION),
)


def to_status(exc: BaseException) -> status_pb2.Status | None:
    """The status of a domain error; None for anything else (a bug: INTERNAL)."""
    code = next((c for cls, c in CODES if isinstance(exc, cls)), None)
    if code is None:
        return None
    status = status_pb2.Status(code=code, message=str(exc))
    detail = _detail(exc)
    if detail is not None:
        status.details.add().Pack(detail)
    return status


def internal_status() -> status_pb2.Status:
    # The exception itself goes to the server log only: it may name paths or internals.
    return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error; see the server log")


def _detail(exc: BaseException):
    if isinstance(exc, InvalidArgument):
        return error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.path, description=v.message)
            for v in exc.violations])
    if isinstance(exc, ModelNotServed):
        return error_details_pb2.PreconditionFailure(violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type="MODEL_NOT_SERVED", subject=exc.model,
                description=f"served models: {', '.join(exc.served)}")])
    return None
