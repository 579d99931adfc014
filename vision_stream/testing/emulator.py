"""One entry point for ``vision-stream emulate``: the Live half and the REST half together.

Ports: the Live (WebSocket) emulator listens on ``port``; the REST emulator on
``port + 1``. They are separate servers on purpose: websockets'
``process_request`` can answer plain HTTP but only with a whole body at once,
while the REST half must stream SSE chunk by chunk, cut a stream with an error
object, and stall mid-response. Point the client at both::

    vision-stream emulate --port 8765
    vision-stream replay clip.mp4 --live-url ws://127.0.0.1:8765 --rest-url http://127.0.0.1:8766

Knobs (``--fault``, repeatable, whitespace-separated ``key=value`` words):
words starting with ``rest.`` go to the REST half (:class:`RestKnobs`, e.g.
``rest.fault=429x3 rest.retry_delay=2 rest.chunk_delay=0.1``); every other word
goes to the Live half (:class:`EmulatorKnobs`, e.g. ``refuse=503
fault=drop@5``). Combined faults model the failover cases: ``refuse=503`` (live
refused, REST fine), ``refuse=503 rest.fault=503`` (both down).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable

from .auth_tokens import AuthTokens
from .live_emulator import LiveEmulator
from .live_knobs import EmulatorKnobs
from .rest_emulator import RestEmulator
from .rest_knobs import RestKnobs

log = logging.getLogger("vision_stream.testing.emulator")

REST_PREFIX = "rest."


def split_knobs(items: Iterable[str]) -> tuple[EmulatorKnobs, RestKnobs]:
    """Route ``key=value`` words to the Live and REST halves (``rest.`` prefix -> REST)."""
    live: list[str] = []
    rest: list[str] = []
    for item in items:
        for word in item.split():
            if word.startswith(REST_PREFIX):
                rest.append(word[len(REST_PREFIX):])
            else:
                live.append(word)
    return EmulatorKnobs.from_strings(live), RestKnobs.from_strings(rest)


async def serve_from_cli(host: str, port: int, faults: list[str], *, tls: ssl.SSLContext | None = None) -> None:
    """Run both halves until cancelled: Live on ``port``, REST on ``port + 1`` (see module docstring).
    ``tls``: the Live half serves ``wss://`` (the official SDK always connects with TLS)."""
    try:
        live_knobs, rest_knobs = split_knobs(faults)
    except ValueError as exc:
        from ..errors import UsageError

        raise UsageError(f"bad emulator knob: {exc}") from None
    tokens = AuthTokens()  # minted on the REST half (POST /v1alpha/auth_tokens), spent on the Live half
    async with LiveEmulator(live_knobs, host=host, port=port, tokens=tokens, tls=tls) as live, RestEmulator(
        rest_knobs, host=host, port=port + 1 if port else 0, tokens=tokens
    ) as rest:
        print(f"Gemini Live emulator on {live.url}  (--live-url {live.url})", flush=True)
        print(f"Gemini REST emulator on {rest.url}  (--rest-url {rest.url})", flush=True)
        await asyncio.Event().wait()
