"""Our errors as HTTP answers and WebSocket close codes: the gRPC verdict, re-spelled.

The verdict is ``status.status_for`` (the one mapping gRPC uses); this module
only names it in HTTP: ``{"error": {"code": <http>, "status": "<GRPC NAME>",
"message": "<bounded, scrubbed>"}}``, with ``Retry-After`` when the error
knows its delay. A WebSocket closes with 1007 (bad data), 1008 (policy or
limits) or 1011 (server trouble), the reason cut to the 123 bytes RFC 6455
§5.5 leaves a close frame's reason.
"""

from __future__ import annotations

import json
import math

import grpc
from aiohttp import web

from ... import errors
from ..status import bounded, internal_error, retry_after, status_for

__all__ = ["CLOSE_REASON_BYTES", "close_for", "error_response", "http_status"]

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.OUT_OF_RANGE: 416,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# RFC 6455 §5.5: a control frame's payload is at most 125 bytes, 2 of them the code.
CLOSE_REASON_BYTES = 123
_CLOSE_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 1007,  # invalid frame payload data
    grpc.StatusCode.OUT_OF_RANGE: 1008,
    grpc.StatusCode.UNAUTHENTICATED: 1008,  # policy violation
    grpc.StatusCode.PERMISSION_DENIED: 1008,
    grpc.StatusCode.NOT_FOUND: 1008,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 1008,
    grpc.StatusCode.DEADLINE_EXCEEDED: 1008,
    grpc.StatusCode.FAILED_PRECONDITION: 1008,
}


def as_ours(exc: BaseException, where: str) -> errors.VisionStreamError:
    """``exc`` if it is one of our errors, else an internal error (logged, type name only)."""
    return exc if isinstance(exc, errors.VisionStreamError) else internal_error(exc, where)


def http_status(exc: errors.VisionStreamError) -> int:
    return _HTTP_STATUS.get(status_for(exc), 500)


def error_response(exc: errors.VisionStreamError, *, code: int | None = None) -> web.Response:
    """The JSON error answer for ``exc`` (``code`` overrides the HTTP status, e.g. 413)."""
    status = status_for(exc)
    http = code or _HTTP_STATUS.get(status, 500)
    body = {"error": {"code": http, "status": status.name, "message": bounded(exc.message)}}
    headers = {}
    delay = retry_after(exc)
    if delay is not None:
        headers["Retry-After"] = str(max(1, math.ceil(delay)))
    return web.Response(status=http, text=json.dumps(body), content_type="application/json", headers=headers)


def close_for(exc: errors.VisionStreamError) -> tuple[int, str]:
    """(close code, reason of at most CLOSE_REASON_BYTES) for a WebSocket ended by ``exc``."""
    return _CLOSE_CODES.get(status_for(exc), 1011), bounded(exc.message, CLOSE_REASON_BYTES)
