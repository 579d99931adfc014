"""The one place a NATS connection is made (the event store, and the fleet's leases).

Reconnects are bounded and logged: nats-py retries the server every
``RECONNECT_WAIT`` seconds up to ``RECONNECT_ATTEMPTS`` times while its
client buffers publishes (``PENDING_BYTES``); past that the connection closes
and callers get ``ConnectionClosedError``.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from ..errors import UsageError
from ..redact import redact_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3
RECONNECT_WAIT = 1
RECONNECT_ATTEMPTS = 120  # two minutes of a NATS server away, then the connection gives up
PENDING_BYTES = 64 << 20  # what the client buffers while reconnecting
JS_TIMEOUT = 5.0  # a JetStream API request (publish ack, get, KV)


def check_url(url: str) -> str:
    """``nats://HOST:PORT`` (or tls://), checked: a clear error naming the flag otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise UsageError(f"--events {redact_url(url)[:80]!r}: give nats://HOST:PORT")
    return url


async def connect(url: str, *, name: str = "vision-stream") -> tuple[Client, JetStreamContext]:
    """A connected client and its JetStream context; UsageError when the server cannot be reached."""
    check_url(url)
    shown = redact_url(url)

    async def disconnected() -> None:
        log.warning("NATS %s: disconnected; reconnecting every %d s", shown, RECONNECT_WAIT)

    async def reconnected() -> None:
        log.info("NATS %s: reconnected", shown)

    async def error(exc: Exception) -> None:
        log.warning("NATS %s: %s", shown, exc)

    try:
        client = await nats.connect(
            servers=[url], name=name, connect_timeout=CONNECT_TIMEOUT, reconnect_time_wait=RECONNECT_WAIT,
            max_reconnect_attempts=RECONNECT_ATTEMPTS, allow_reconnect=True, pending_size=PENDING_BYTES,
            disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error,
        )
    except Exception as exc:  # nats-py raises NoServersError, OSError, TimeoutError...
        raise UsageError(f"cannot reach NATS at {shown}: {type(exc).__name__}: {str(exc)[:200]} "
                         "(is nats-server running with -js?)") from None
    return client, client.jetstream(timeout=JS_TIMEOUT)
