"""A configured camera's Gemini session across a restart or a fleet takeover (issue 13 item 2).

Two per-session state values live beside the events (``EventStore.set_state``):

- ``live_handle``: the newest resumable Live handle and the wall time it came
  (JSON ``{"handle": ..., "at": ...}``). Google keeps a handle 2 hours
  (LIVE_API.md "Server messages"); an older one is not presented at all.
- ``summary``: the last final commentary texts, newest last, cut to
  :data:`SUMMARY_BYTES` from the front: what a session that cannot resume is told
  it saw (a fresh Live session starts with an empty context).

The backend never sees the store: :func:`load` turns the state into a
:class:`~vision_stream.config.Resumption` whose ``on_handle`` feeds a
:class:`StateWriter`, and :func:`track` feeds it the log's commentary.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from ..config import Resumption
from ..events import Commentary, Event, EventLog, SessionEnded
from .base import EventStore

log = logging.getLogger(__name__)

HANDLE_KEY = "live_handle"
SUMMARY_KEY = "summary"
# Google keeps a resumption handle about 2 hours (LIVE_API.md); older ones are not presented.
HANDLE_LIFETIME = 2 * 3600.0
SUMMARY_BYTES = 2048
# At most one write per key this often (the newest value waiting meanwhile): a handle
# comes with every turn, and each write is a transaction (SQLite) or a KV put (NATS).
WRITE_EVERY = 5.0


def handle_value(handle: str, at: float) -> str:
    return json.dumps({"handle": handle, "at": at})


def stored_handle(value: str | None, now: float) -> str | None:
    """The handle in a ``live_handle`` value, or None when absent, unreadable or older than 2 h."""
    try:
        data = json.loads(value or "")
        handle, at = data["handle"], float(data["at"])
    except (ValueError, TypeError, KeyError):
        return None
    return handle if isinstance(handle, str) and handle and now - at < HANDLE_LIFETIME else None


def rolled(summary: str, text: str, limit: int = SUMMARY_BYTES) -> str:
    """``summary`` with ``text`` added last, its oldest characters cut to ``limit`` UTF-8 bytes."""
    joined = f"{summary}\n{text}".strip() if summary else text.strip()
    data = joined.encode()
    if len(data) <= limit:
        return joined
    return data[-limit:].decode(errors="ignore").lstrip()


@dataclass(slots=True)
class StateWriter:
    """Bounded writes of one session's state: a value is written when it changed, at most
    once per ``every`` seconds per key (the newest waits for its turn; :meth:`close` writes
    what waits). Writes go through the store's queue: nothing here awaits or blocks."""

    store: EventStore
    session_id: str
    every: float = WRITE_EVERY
    _written: dict[str, str] = field(default_factory=dict)
    _at: dict[str, float] = field(default_factory=dict)
    _waiting: dict[str, str] = field(default_factory=dict)
    _timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    closed: bool = False

    def put(self, key: str, value: str) -> None:
        if self._written.get(key) == value:
            self._waiting.pop(key, None)
            return
        wait = self._at.get(key, -self.every) + self.every - time.monotonic()
        if self.closed or wait <= 0:
            self._write(key, value)
            return
        self._waiting[key] = value
        if key not in self._timers:
            self._timers[key] = asyncio.get_running_loop().call_later(wait, self._due, key)

    def close(self) -> None:
        """The session ended: what waits is written now (before the store closes)."""
        self.closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for key, value in list(self._waiting.items()):
            self._write(key, value)

    def _due(self, key: str) -> None:
        self._timers.pop(key, None)
        if key in self._waiting:
            self._write(key, self._waiting[key])

    def _write(self, key: str, value: str) -> None:
        self._waiting.pop(key, None)
        self._written[key], self._at[key] = value, time.monotonic()
        self.store.set_state(self.session_id, key, value)


async def load(store: EventStore, writer: StateWriter) -> Resumption:
    """What the store kept of the session's model session, with the hook that keeps it current."""
    handle = stored_handle(await store.get_state(writer.session_id, HANDLE_KEY), time.time())
    summary = await store.get_state(writer.session_id, SUMMARY_KEY) or ""

    def on_handle(new: str) -> None:
        writer.put(HANDLE_KEY, handle_value(new, time.time()))

    return Resumption(handle=handle, summary=summary, on_handle=on_handle)


def track(log_: EventLog, writer: StateWriter, summary: str) -> None:
    """Keep the rolling summary from the log's final commentary; write what waits at the end."""
    state = {"summary": summary}

    def observe(event: Event) -> None:
        payload = event.payload
        if isinstance(payload, Commentary) and payload.final and payload.text.strip():
            state["summary"] = rolled(state["summary"], payload.text)
            writer.put(SUMMARY_KEY, state["summary"])
        elif isinstance(payload, SessionEnded):
            writer.close()

    log_.observers.append(observe)
