"""Classifying REST errors: Google's error object -> :class:`ServiceError` with a retry verdict.

Facts (LIVE_API.md §2 "Errors"): errors arrive as
``{"error": {"code", "status", "message", "details": [...]}}``; 429
``RESOURCE_EXHAUSTED`` carries ``google.rpc.RetryInfo.retryDelay`` (a proto3
Duration string such as ``"34s"``) and ``google.rpc.QuotaFailure`` violations
whose ``quotaId`` contains ``PerDay`` when the daily quota is gone; 503
``UNAVAILABLE`` happens; a bad key is 400 with reason ``API_KEY_INVALID``; a
Live-only model answers 404 ``NOT_FOUND``. The same object may arrive inside an
SSE stream. Pure functions: no I/O, no clocks.

``ServiceError.code`` says which case it is (the failover chain and the tests
read it): ``quota`` (per-minute, retry after the delay), ``quota_per_day``
(pointless to retry today), ``unavailable`` (408/5xx, back off),
``api_key_invalid``, ``permission_denied``, ``model_not_found``,
``bad_request``, ``rest_error`` (anything else).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from ...errors import ServiceError
from ...redact import scrub
from ...retry import is_transient_http
from ..gemini_api import parse_duration

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
MAX_MESSAGE = 500  # characters of the server's message we keep


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """HTTP ``Retry-After`` (delta-seconds or an HTTP date) -> seconds from now; None if absent/bad.

    ``now`` is the wall clock (seconds since the epoch) an HTTP date is compared
    with; it defaults to ``time.time()`` (a date is wall-clock by definition).
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _details(error: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    details = error.get("details")
    return [d for d in details if isinstance(d, Mapping)] if isinstance(details, list) else []


def retry_delay_of(error: Mapping[str, Any]) -> float | None:
    """``RetryInfo.retryDelay`` in seconds, if the error carries one."""
    for detail in _details(error):
        if detail.get("@type") == RETRY_INFO:
            return parse_duration(detail.get("retryDelay"))
    return None


def quota_ids_of(error: Mapping[str, Any]) -> list[str]:
    """``QuotaFailure.violations[].quotaId`` values."""
    ids = []
    for detail in _details(error):
        if detail.get("@type") == QUOTA_FAILURE:
            for violation in detail.get("violations") or ():
                if isinstance(violation, Mapping) and violation.get("quotaId"):
                    ids.append(str(violation["quotaId"]))
    return ids


def reasons_of(error: Mapping[str, Any]) -> list[str]:
    """``ErrorInfo.reason`` values (e.g. ``API_KEY_INVALID``)."""
    return [str(d.get("reason")) for d in _details(error) if d.get("@type") == ERROR_INFO and d.get("reason")]


def classify_error(
    status: int,
    error: Mapping[str, Any] | None,
    *,
    model: str,
    retry_after_header: float | None = None,
    text: str = "",
    secrets: tuple[str, ...] = (),
) -> ServiceError:
    """One REST failure as a :class:`ServiceError` (status, code, retryable, retry_after).

    ``error`` is the ``error`` object of the body (None when the body was not
    Google's JSON; ``text`` is then shown instead). ``model`` names the
    configured model for the 404 hint. The message never contains ``secrets``.
    """
    error = error or {}
    code_value = error.get("code")
    if isinstance(code_value, int) and 400 <= code_value <= 599 and status == 200:
        status = code_value  # an error object inside an SSE stream
    google_status = str(error.get("status") or "")
    message = str(error.get("message") or text or "").strip()[:MAX_MESSAGE]
    shown = f"HTTP {status}" + (f" {google_status}" if google_status else "") + (f": {message}" if message else "")
    retry_after = retry_delay_of(error)
    if retry_after is None:
        retry_after = retry_after_header
    reasons = reasons_of(error)

    def make(kind: str, what: str, *, retryable: bool, after: float | None = None) -> ServiceError:
        return ServiceError(scrub(what, *secrets), http_status=status, retryable=retryable, code=kind,
                            retry_after=after)

    if status == 429:
        per_day = [q for q in quota_ids_of(error) if "PerDay" in q]
        if per_day:
            # LIVE_API.md §2: a PerDay quota id means retrying today is pointless
            # (a retryDelay may still be present; it is not believed).
            return make(
                "quota_per_day",
                f"Gemini REST daily quota exhausted ({per_day[0]}); no retries until the quota resets. {shown}",
                retryable=False,
            )
        return make("quota", f"Gemini REST rate limit: {shown}", retryable=True, after=retry_after)
    if is_transient_http(status):
        return make("unavailable", f"Gemini REST unavailable: {shown}", retryable=True, after=retry_after)
    if "API_KEY_INVALID" in reasons or (status in (400, 401) and "api key" in message.lower()):
        return make("api_key_invalid", f"Gemini REST rejected the API key: {shown}", retryable=False)
    if status in (401, 403):
        return make("permission_denied", f"Gemini REST refused access: {shown}", retryable=False)
    if status == 404:
        # LIVE_API.md §2: a Live-only (or retired) model answers 404 on REST.
        return make(
            "model_not_found",
            f"model {model!r} is not available on the REST API (generateContent): it may be a Live-only "
            f"model (those speak only WebSocket) or retired. Set --snapshot-model (BackendOptions."
            f"snapshot_model) to a standard model such as gemini-flash-latest. Server said: {shown}",
            retryable=False,
        )
    if status == 400:
        return make("bad_request", f"Gemini REST rejected the request: {shown}", retryable=False)
    return make("rest_error", f"Gemini REST error: {shown}", retryable=False)
