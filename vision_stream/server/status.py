"""The one place where our errors become gRPC status codes.

Handlers raise our errors; :func:`rpc_errors` (a decorator on every RPC
handler) or :func:`abort_with` turns them into the status. A status message
is capped at ``MAX_STATUS_CHARS``; ``RESOURCE_EXHAUSTED`` (and any error with
a known retry delay) carries ``google.rpc.RetryInfo`` in its details, read by
clients from the ``grpc-status-details-bin`` trailer as Google's APIs do.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from .. import errors
from ..redact import scrub

log = logging.getLogger(__name__)

# Longest status message sent (characters): gRPC sends it as the grpc-message
# header (percent-encoded, up to 3 bytes per character), and a peer refuses
# headers over its metadata limit (8 KiB by default), which would replace our
# status with an INTERNAL one.
MAX_STATUS_CHARS = 1024

_CODES: tuple[tuple[type[errors.VisionStreamError], grpc.StatusCode], ...] = (
    (errors.RetentionGapError, grpc.StatusCode.OUT_OF_RANGE),
    (errors.ResumeAheadError, grpc.StatusCode.OUT_OF_RANGE),
    (errors.EvidenceRangeError, grpc.StatusCode.OUT_OF_RANGE),
    (errors.InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (errors.LimitExceededError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.InputTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.UsageError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.SourceOpenError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DecodeError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.MediaError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.TransportError, grpc.StatusCode.UNAVAILABLE),
    (errors.BackendError, grpc.StatusCode.UNAVAILABLE),
    (errors.SessionError, grpc.StatusCode.FAILED_PRECONDITION),
)


# A service's refusal, by what it said: the HTTP status of a request
# (REST, or the Live WebSocket upgrade), or the close code of a Live
# connection (RFC 6455 §7.4.1: 1007 invalid payload data, 1008 policy
# violation, which Gemini Live sends for an unknown model or a refused key).
_HTTP_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.PERMISSION_DENIED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_CLOSE_CODES = {
    1007: grpc.StatusCode.INVALID_ARGUMENT,
    1008: grpc.StatusCode.NOT_FOUND,
}


def status_for(exc: errors.VisionStreamError) -> grpc.StatusCode:
    """The gRPC status for one of our errors (most specific class first)."""
    if isinstance(exc, errors.ServiceError):
        said = _HTTP_CODES.get(exc.http_status or 0) or _CLOSE_CODES.get(exc.close_code or 0)
        if said is not None:
            return said
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def retry_after(exc: errors.VisionStreamError) -> float | None:
    """Seconds after which retrying may succeed, when the error knows it."""
    delay = exc.retry_after
    if delay is None or not math.isfinite(delay) or delay < 0:
        return None
    return delay


def bounded(message: str, limit: int = MAX_STATUS_CHARS) -> str:
    """``message`` with secrets scrubbed, cut to ``limit`` UTF-8 bytes (every status message).

    Bytes, not characters: gRPC percent-encodes each non-ASCII byte of the
    grpc-message header (3 characters a byte), so 1024 bytes stay under about
    3 KiB on the wire whatever the text (17,500 emoji "characters" did not).
    The text is cut (generously) before it is scrubbed, so scrubbing cost is
    bounded too.
    """
    message = scrub(message[: limit * 8])
    encoded = message.encode("utf-8")
    if len(encoded) <= limit:
        return message
    marker = " ... (truncated)"
    return encoded[: limit - len(marker)].decode("utf-8", "ignore") + marker


def grpc_status(exc: errors.VisionStreamError, *, limit: int = MAX_STATUS_CHARS) -> grpc.Status:
    """The full status for ``exc``: code, bounded message, RetryInfo when a delay is known."""
    code = status_for(exc)
    proto = status_pb2.Status(code=code.value[0], message=bounded(exc.message, limit))
    delay = retry_after(exc)
    if delay is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(int(delay * 1e9))
        detail = any_pb2.Any()
        detail.Pack(info)
        proto.details.append(detail)
    return rpc_status.to_status(proto)


async def abort_with(context: grpc.aio.ServicerContext, exc: errors.VisionStreamError) -> None:
    """End the RPC with the status for ``exc`` and its (secret-free, bounded) message."""
    await context.abort_with_status(grpc_status(exc))


def internal_error(exc: BaseException, where: str) -> errors.VisionStreamError:
    """A bug met while serving: logged with its traceback, reported by type only."""
    log.error("%s: internal error", where, exc_info=exc)
    return errors.VisionStreamError(f"internal error: {type(exc).__name__}", code="internal")


H = TypeVar("H", bound=Callable[..., Any])


def rpc_errors(handler: H) -> H:
    """Decorate an RPC handler (coroutine or async generator) so that every
    error it raises ends the call through the one mapping: our errors with
    their status, anything else as INTERNAL (logged, type name only).

    ``context.abort`` raises grpc.aio's AbortError to unwind the handler; it
    passes through untouched, as does cancellation (a BaseException).
    """
    if inspect.isasyncgenfunction(handler):
        @functools.wraps(handler)
        async def streaming(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in handler(self, request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort_for(context, exc, handler.__name__)

        return cast(H, streaming)

    @functools.wraps(handler)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort_for(context, exc, handler.__name__)

    return cast(H, unary)


async def _abort_for(context: grpc.aio.ServicerContext, exc: Exception, where: str) -> None:
    """End the call for any error a handler raised: ours with their status, others as INTERNAL."""
    await abort_with(context, exc if isinstance(exc, errors.VisionStreamError) else internal_error(exc, where))
