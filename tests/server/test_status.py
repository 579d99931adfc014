"""The one status mapping: a service's refusal is read from what it said, an
HTTP status or a WebSocket close code, never one mistaken for the other."""

from __future__ import annotations

import grpc
import pytest

from vision_stream.errors import RetentionGapError, ServiceError, TransportError, VisionStreamError
from vision_stream.server.status import status_for


@pytest.mark.parametrize(("error", "code"), [
    (ServiceError("bad request", http_status=400), grpc.StatusCode.INVALID_ARGUMENT),
    (ServiceError("bad key", http_status=403), grpc.StatusCode.PERMISSION_DENIED),
    (ServiceError("no such model", http_status=404), grpc.StatusCode.NOT_FOUND),
    (ServiceError("slow down", http_status=429), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ServiceError("overloaded", http_status=503), grpc.StatusCode.UNAVAILABLE),
    (ServiceError("invalid payload", close_code=1007), grpc.StatusCode.INVALID_ARGUMENT),
    (ServiceError("policy violation", close_code=1008), grpc.StatusCode.NOT_FOUND),
    (ServiceError("internal", close_code=1011), grpc.StatusCode.UNAVAILABLE),
    (ServiceError("no status"), grpc.StatusCode.UNAVAILABLE),
    (TransportError("refused"), grpc.StatusCode.UNAVAILABLE),
    (RetentionGapError(3, 9), grpc.StatusCode.OUT_OF_RANGE),
])
def test_status_for(error: VisionStreamError, code: grpc.StatusCode) -> None:
    assert status_for(error) == code


def test_http_status_and_close_code_stay_apart() -> None:
    # The legacy status= keyword is sorted by range (RFC 6455 close codes are 1000-4999).
    http, closed = ServiceError("x", status=404), ServiceError("y", status=1008)
    assert (http.http_status, http.close_code, http.status) == (404, None, 404)
    assert (closed.http_status, closed.close_code, closed.status) == (None, 1008, 1008)
    both = ServiceError("z", http_status=429, close_code=1011, code="quota", retry_after=2.0)
    copy = both.clone("again")
    assert (copy.http_status, copy.close_code, copy.code, copy.retry_after, copy.message) == (
        429, 1011, "quota", 2.0, "again")
    assert status_for(copy) == grpc.StatusCode.RESOURCE_EXHAUSTED
