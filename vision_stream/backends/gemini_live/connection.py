"""Opening one Live WebSocket, and translating how it ended into an :class:`Ending`.

Credentials travel only in upgrade headers. websockets logs every request
header at DEBUG level, so it gets a :class:`~vision_stream.redact.RedactingLogger`
that scrubs credential headers (and the configured secrets anywhere) before
anything is written, whatever handlers the application configured.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ...net import network_failure
from ...redact import RedactingLogger, redact_url, scrub
from .endings import Ending
from .settings import LiveSettings

log = logging.getLogger("vision_stream.backends.gemini_live")


class ConnectFailed(Exception):
    """Internal: a connection attempt failed before ``setupComplete``."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.label)
        self.ending = ending


async def open_websocket(settings: LiveSettings) -> ClientConnection:
    """Connect and upgrade; raises :class:`ConnectFailed` with a classified ending."""
    secrets = settings.secrets()
    url = settings.endpoint
    log.debug("connecting to %s", redact_url(url))
    try:
        return await connect(
            url,
            additional_headers=settings.headers(),
            open_timeout=settings.timeouts.connect,
            ping_interval=settings.timeouts.ping_interval,
            ping_timeout=settings.timeouts.ping_timeout,
            close_timeout=settings.timeouts.close,
            # Server messages (audio bursts, grounding metadata) exceed websockets' 1 MiB default.
            max_size=settings.max_message_bytes,
            # Our receiver never waits long, but a deep queue keeps pongs flowing
            # when the consumer is briefly slow (a paused reader loses pongs -> 1011).
            max_queue=256,
            # Base64 JPEG and PCM barely compress; deflate would only cost CPU.
            compression=None,
            # Respect HTTPS_PROXY for Google, never for a loopback emulator.
            proxy=None if settings.is_loopback else True,
            logger=RedactingLogger(logging.getLogger("vision_stream.backends.gemini_live.ws"), *secrets),
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        phrase = exc.response.reason_phrase or ""
        if status == 404:
            # Google answers a path it does not serve (an unknown API version or method) with a 404 page.
            phrase = f"{phrase}: no Live endpoint at {redact_url(url)} (check the Live URL and api_version)"
        raise ConnectFailed(Ending(status, scrub(phrase, *secrets), before_setup=True, http=True)) from None
    except InvalidURI as exc:
        raise ConnectFailed(Ending(400, f"invalid URL {redact_url(url)}", before_setup=True, http=True)) from exc
    except (InvalidHandshake, OSError, TimeoutError, EOFError) as exc:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        plain = network_failure(exc, parts.hostname or "", f"{parts.hostname}:{port}")
        reason = scrub(plain or f"{type(exc).__name__}: {exc}", *secrets)
        raise ConnectFailed(Ending(0, reason, before_setup=True)) from None


def ending_of(exc: ConnectionClosed, *, before_setup: bool, go_away: bool) -> Ending:
    """How the server (or the network) closed the connection.

    No close frame received means the network dropped it (1006), even when
    websockets sent a 1011 of its own after a keepalive timeout.
    """
    if exc.rcvd is not None:
        return Ending(exc.rcvd.code, exc.rcvd.reason, before_setup=before_setup, go_away=go_away)
    reason = "connection lost"
    if exc.sent is not None and exc.sent.code == 1011:
        reason = "keepalive ping timeout"
    return Ending(1006, reason, before_setup=before_setup, go_away=go_away)
