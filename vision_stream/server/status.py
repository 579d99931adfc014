"""The one place where our errors become gRPC status codes."""

from __future__ import annotations

import grpc

from .. import errors
from ..events import RetentionGapError

_CODES: tuple[tuple[type[errors.VisionStreamError], grpc.StatusCode], ...] = (
    (RetentionGapError, grpc.StatusCode.OUT_OF_RANGE),
    (errors.InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.UsageError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.SourceOpenError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.MediaError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.TransportError, grpc.StatusCode.UNAVAILABLE),
    (errors.BackendError, grpc.StatusCode.UNAVAILABLE),
    (errors.SessionError, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(exc: errors.VisionStreamError) -> grpc.StatusCode:
    """The gRPC status for one of our errors (most specific class first)."""
    if isinstance(exc, errors.ServiceError) and exc.status is not None:
        if exc.status in (400, 1007):
            return grpc.StatusCode.INVALID_ARGUMENT
        if exc.status in (401, 403):
            return grpc.StatusCode.PERMISSION_DENIED
        if exc.status in (404, 1008):
            return grpc.StatusCode.NOT_FOUND
        if exc.status == 429:
            return grpc.StatusCode.RESOURCE_EXHAUSTED
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


async def abort_with(context: grpc.aio.ServicerContext, exc: errors.VisionStreamError) -> None:
    """End the RPC with the status for ``exc`` and its (secret-free) message."""
    await context.abort(status_for(exc), exc.message)
