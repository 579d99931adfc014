"""The event store's interface, shared by its three implementations.

A store keeps, per session, the encoded events (serialized ``pb.Event``: the
bytes Subscribe sends, so a replay after a restart costs no re-encoding) under
a gap-free ``seq``, the session's current *run* (``run_id``), a little
metadata for ``ListSessions`` after a restart, and a small key/value state
(the latest Live resumption handle, the rolling summary).

Writes never block the session's loop: :meth:`EventStore.append` only hands
the batch over (a bounded queue for SQLite, a publish task for NATS); a batch
that does not fit is *dropped and counted* (``StoreCounters.dropped``), and the
event log reports it as a ``store_behind`` error event. Reads are async.

Retention (:class:`Retention`): ``max_events`` per session, ``max_age``
seconds per event, ``max_bytes`` for the whole store (oldest events first):
the three map one to one onto JetStream's stream limits
(``max_msgs_per_subject``, ``max_age``, ``max_bytes``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import UsageError

# flush() waits at most this long (seconds) for the writer to catch up.
FLUSH_TIMEOUT = 10.0
# Reads are paged: one replay asks for at most this many events at a time.
READ_PAGE = 500


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as the store keeps it: its seq, wall time and encoded bytes."""

    seq: int
    wall_time: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Retention:
    """What a store keeps (0 = no limit of that kind)."""

    max_events: int = 100_000  # per session
    max_age: float = 7 * 24 * 3600.0  # seconds, per event
    max_bytes: int = 1 << 30  # the whole store

    def __post_init__(self) -> None:
        if self.max_events < 0 or self.max_age < 0 or self.max_bytes < 0:
            raise UsageError(f"event store retention must not be negative: {self}")


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """What ListSessions shows of a session the store knows (after a restart too)."""

    source: str = ""
    backend: str = ""
    owner: str | None = None  # principal name; None: the server (a configured camera)
    viewers: tuple[str, ...] = ()
    started_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as the store knows it."""

    session_id: str
    run_id: str
    last_seq: int
    ended: bool
    end_reason: str = ""
    meta: SessionMeta = field(default_factory=SessionMeta)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run a starting session writes under: ``last_seq`` is where its seq continues from
    (0 for a new run); ``previous_run`` is the run it replaced ("" when none or continued)."""

    session_id: str
    run_id: str
    last_seq: int
    continued: bool
    previous_run: str = ""


@dataclass(slots=True)
class StoreCounters:
    """Reported, not hidden: what a store was handed, wrote, and could not keep up with."""

    appended: int = 0  # events handed to append()
    written: int = 0  # events durably written (or acknowledged by the server)
    dropped: int = 0  # events refused because the write queue was full
    write_errors: int = 0  # batches that failed to write
    queue_high: int = 0  # the write queue's high-water mark (events)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class EventStore(Protocol):
    """One interface, three implementations (memory, sqlite, nats): same semantics."""

    name: str
    retention: Retention
    counters: StoreCounters

    async def open(self) -> None:
        """Connect / create what the store needs (idempotent)."""

    async def close(self) -> None:
        """Flush what is queued, then release the store."""

    async def begin_run(self, session_id: str, *, resume: bool, meta: SessionMeta) -> RunInfo:
        """Start writing ``session_id``: with ``resume`` (a configured camera) and a run the
        store knows that ended cleanly, continue it (same run_id, seq after its last);
        otherwise a new run (new run_id, seq from 1; the session's earlier events are dropped).

        A run that did not end cleanly (the process was killed) is not continued: events
        its followers saw may not have reached the store, and reusing their seqs would
        hand a resuming client different events under numbers it already has."""

    def append(self, session_id: str, run_id: str, events: Sequence[StoredEvent]) -> bool:
        """Hand events over for writing; never blocks. False: refused (queue full, counted)."""

    def end_session(self, session_id: str, reason: str) -> None:
        """Mark the session ended (queued after its events); never blocks."""

    async def flush(self) -> None:
        """Wait until everything appended so far is written (at most FLUSH_TIMEOUT seconds)."""

    async def read(self, session_id: str, after_seq: int, limit: int = READ_PAGE) -> list[StoredEvent]:
        """Retained events of ``session_id`` with seq > after_seq, oldest first, at most ``limit``."""

    async def last_seq(self, session_id: str) -> int:
        """The session's last written seq (0: none)."""

    async def oldest_seq(self, session_id: str) -> int:
        """The oldest retained seq (last_seq + 1 when none is retained)."""

    async def session(self, session_id: str) -> SessionRecord | None:
        """The session's record, or None when the store does not know it."""

    async def sessions(self) -> list[SessionRecord]:
        """Every session the store knows."""

    async def put_state(self, session_id: str, key: str, value: str) -> None:
        """Keep a small per-session value (Live resumption handle, rolling summary)."""

    async def get_state(self, session_id: str, key: str) -> str | None:
        """The value put last under ``key`` (None: none)."""

    def set_state(self, session_id: str, key: str, value: str) -> None:
        """``put_state`` through the write queue: never blocks (a session's loop writes its
        Live handle and summary this way); written in order with its events, by ``close()``."""
