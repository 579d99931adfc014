"""Webhook sink: each event POSTed as JSON, signed, retried with the one retry policy.

The body is the event's ``pb.Event`` in protobuf's JSON mapping (the same JSON
SSE and the WebSocket send). Headers:

- ``X-Vision-Stream-Timestamp``: seconds since the epoch when it was signed;
- ``X-Vision-Stream-Signature: sha256=<hex>``: HMAC-SHA256, keyed with the
  sink's secret, of ``<timestamp>.<body>`` (the timestamp is signed with the
  body, so a captured request cannot be replayed later with a fresh one;
  receivers refuse timestamps older than a few minutes). :func:`sign` and
  :func:`verify` are the reference.

Transient failures (connection errors, timeouts, HTTP 408/429/5xx:
``retry.is_transient_http``) are retried with the sink's capped jittered
backoff (``retry.Backoff``), honouring ``Retry-After``; other statuses and an
exhausted policy give the event up (counted ``failed``). Retrying holds only
this sink's queue: sessions never wait for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import httpx

from ..events import Event
from ..redact import redact_url
from ..retry import Backoff, is_transient_http
from ..server.http.jsonio import event_json
from .base import Sink
from .config import WebhookSinkConfig

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookSink", "sign", "verify"]

SIGNATURE_HEADER = "X-Vision-Stream-Signature"
TIMESTAMP_HEADER = "X-Vision-Stream-Timestamp"
_MAX_RETRY_AFTER = 300.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, max_age: float = 300.0,
           now: float | None = None) -> bool:
    """True when ``signature`` matches and ``timestamp`` is within ``max_age`` seconds of ``now``."""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= max_age and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSink(Sink):
    config: WebhookSinkConfig

    def __init__(self, config: WebhookSinkConfig) -> None:
        super().__init__(config)
        self.target = redact_url(config.url)  # for logs: a URL may carry credentials

    async def run(self) -> None:
        # One client (connection pool) per sink; the timeout bounds a hanging receiver. Built off
        # the loop: httpx loads the CA bundle into an SSLContext at construction (~0.25 s of CPU).
        client = await asyncio.to_thread(httpx.AsyncClient, timeout=self.config.timeout, follow_redirects=False)
        async with client:
            while True:
                event = await self.next_event()
                if event is not None:
                    await self._deliver(client, event)

    async def _deliver(self, client: httpx.AsyncClient, event: Event) -> None:
        body = event_json(event).encode()
        backoff = Backoff(self.config.retry)
        while True:
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                       SIGNATURE_HEADER: sign(self.config.secret, timestamp, body)}
            retry_after = 0.0
            try:
                response = await client.post(self.config.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                why = f"{self.target}: {type(exc).__name__}"
            else:
                if response.is_success:
                    self.note_delivered()
                    return
                why = f"{self.target}: HTTP {response.status_code}"
                if not is_transient_http(response.status_code):
                    self.note_failed(why)
                    return
                retry_after = _retry_after(response)
            wait = backoff.fail(at_least=retry_after)
            if wait is None:
                self.note_failed(f"{why} ({backoff.failures} attempts)")
                return
            await asyncio.sleep(wait)


def _retry_after(response: httpx.Response) -> float:
    """``Retry-After`` in seconds (RFC 9110: delay-seconds; a date is ignored), capped."""
    try:
        return min(_MAX_RETRY_AFTER, max(0.0, float(response.headers.get("retry-after", "0"))))
    except ValueError:
        return 0.0
