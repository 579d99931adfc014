"""Events that survive a restart: one store interface, three implementations.

``memory`` (tests, ``--events memory``), ``sqlite`` (embedded, WAL; the
default of ``serve``, under ``--data-dir``) and ``nats`` (JetStream,
``--events nats://HOST:PORT``). :func:`open_store` picks one from the flag.
The session's :class:`~vision_stream.events.EventLog` keeps its in-memory tail
for live followers and persists through a :class:`StoreSink`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError
from .base import (
    EventStore,
    Retention,
    RunInfo,
    SessionMeta,
    SessionRecord,
    StoreCounters,
    StoredEvent,
)
from .memory import MemoryStore
from .sink import StoreSink
from .sqlite import SqliteStore

__all__ = [
    "EventStore", "MemoryStore", "Retention", "RunInfo", "SessionMeta", "SessionRecord", "SqliteStore",
    "StoreCounters", "StoreSink", "StoredEvent", "default_data_dir", "open_store",
]


def default_data_dir() -> Path:
    """Where ``serve`` keeps its events without ``--data-dir``: the XDG data home
    (``$XDG_DATA_HOME/vision-stream``, else ``~/.local/share/vision-stream``), the
    per-user place Linux tools keep state (platformdirs' answer on Linux, without the dependency)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vision-stream"


def open_store(spec: str = "sqlite", *, data_dir: Path | None = None,
               retention: Retention | None = None) -> EventStore:
    """The store ``--events`` names: ``memory``, ``sqlite`` (under ``data_dir``) or
    ``nats://HOST:PORT`` (not yet connected: call ``await store.open()``)."""
    if spec == "memory":
        return MemoryStore(retention)
    if spec == "sqlite":
        return SqliteStore(data_dir or default_data_dir(), retention)
    if spec.startswith("nats://"):
        from .nats import NatsStore  # nats-py only when asked for

        return NatsStore(spec, retention)
    raise UsageError(f"--events {spec[:80]!r}: give memory, sqlite or nats://HOST:PORT")
