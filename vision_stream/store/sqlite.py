"""The embedded event store: SQLite in WAL mode (the default of ``serve``, ``--data-dir``).

No server to run. Writes go through a bounded queue to one writer thread that
commits them in batches (one transaction per batch: WAL makes a commit one
sequential append plus an fsync at checkpoints, ``synchronous=NORMAL``), so
a session's loop only pays a ``put_nowait``. A full queue refuses the batch
and counts it (``counters.dropped``): the event log reports it. Reads use
their own connection in a worker thread: WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .base import (
    FLUSH_TIMEOUT,
    READ_PAGE,
    Retention,
    RunInfo,
    SessionMeta,
    SessionRecord,
    StoreCounters,
    StoredEvent,
    new_run_id,
)

log = logging.getLogger(__name__)

DB_NAME = "events.sqlite3"
# Events waiting for the writer; beyond this a batch is refused (and counted).
QUEUE_EVENTS = 50_000
# One transaction takes at most this many queued items.
BATCH_ITEMS = 1024
# Retention is enforced at most this often (seconds): it costs a few DELETEs.
RETENTION_EVERY = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    session TEXT NOT NULL, seq INTEGER NOT NULL, wall_time REAL NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (session, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (wall_time);
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY, run_id TEXT NOT NULL, last_seq INTEGER NOT NULL,
    ended INTEGER NOT NULL, end_reason TEXT NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    session TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (session, key));
"""

# A queued item: ("events", session, run_id, [StoredEvent]) | ("end", session, reason) | ("sync", Event)
_Item = tuple[Any, ...]


class SqliteStore:
    name = "sqlite"

    def __init__(self, data_dir: Path, retention: Retention | None = None, *,
                 queue_events: int = QUEUE_EVENTS) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.retention = retention or Retention()
        self.counters = StoreCounters()
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._queued_events = 0  # events in the queue (the bound is on events, not items)
        self._queue_events = queue_events
        self._lock = threading.Lock()  # the reader connection, one thread at a time
        self._count_lock = threading.Lock()  # _queued_events: the loop adds, the writer subtracts
        self._reader: sqlite3.Connection | None = None
        self._writer: threading.Thread | None = None
        self._runs: dict[str, str] = {}  # session -> its current run (what the writer accepts)

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        if self._writer is not None:
            return
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = _connect(self.path)
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open the event store {self.path}: {exc} (check --data-dir)") from None
        self._reader = conn
        for session, run_id in conn.execute("SELECT session, run_id FROM sessions"):
            self._runs[session] = run_id
        self._writer = threading.Thread(target=self._write_loop, name="event-store-writer", daemon=True)
        self._writer.start()

    async def close(self) -> None:
        if self._writer is None:
            return
        self._queue.put(("stop",))
        await asyncio.to_thread(self._writer.join, 30.0)
        self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ------------------------------------------------------------------ writing

    async def begin_run(self, session_id: str, *, resume: bool, meta: SessionMeta) -> RunInfo:
        await self.flush()  # earlier writes of this session land before the run is decided
        return await asyncio.to_thread(self._begin_run, session_id, resume, meta)

    def _begin_run(self, session_id: str, resume: bool, meta: SessionMeta) -> RunInfo:
        conn = self._conn()
        with self._lock, conn:
            row = conn.execute("SELECT run_id, last_seq, ended FROM sessions WHERE session = ?",
                               (session_id,)).fetchone()
            if resume and row is not None and row[0] and row[2]:
                conn.execute("UPDATE sessions SET ended = 0, end_reason = '', meta = ? WHERE session = ?",
                             (_meta_json(meta), session_id))
                self._runs[session_id] = row[0]
                return RunInfo(session_id, row[0], row[1], continued=True)
            run_id = new_run_id()
            conn.execute("DELETE FROM events WHERE session = ?", (session_id,))
            conn.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, 0, 0, '', ?)",
                         (session_id, run_id, _meta_json(meta)))
            self._runs[session_id] = run_id
            return RunInfo(session_id, run_id, 0, continued=False, previous_run=row[0] if row else "")

    def append(self, session_id: str, run_id: str, events: Sequence[StoredEvent]) -> bool:
        n = len(events)
        self.counters.appended += n
        with self._count_lock:
            if self._queued_events + n > self._queue_events:
                self.counters.dropped += n
                return False
            self._queued_events += n
            self.counters.queue_high = max(self.counters.queue_high, self._queued_events)
        self._queue.put_nowait(("events", session_id, run_id, list(events)))
        return True

    def end_session(self, session_id: str, reason: str) -> None:
        self._queue.put_nowait(("end", session_id, reason))

    def set_state(self, session_id: str, key: str, value: str) -> None:
        self._queue.put_nowait(("state", session_id, key, value))

    async def flush(self) -> None:
        if self._writer is None:
            return
        done = threading.Event()
        self._queue.put_nowait(("sync", done))
        await asyncio.to_thread(done.wait, FLUSH_TIMEOUT)

    def _write_loop(self) -> None:
        """The writer thread: batches of queued items, one transaction each."""
        conn = _connect(self.path)
        next_retention = 0.0
        try:
            while True:
                items = [self._queue.get()]
                while len(items) < BATCH_ITEMS:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item[0] == "stop" for item in items)
                self._write_batch(conn, items)
                now = time.monotonic()
                if now >= next_retention or stop:
                    self._guarded(conn, self._apply_retention)
                    next_retention = now + RETENTION_EVERY
                for item in items:
                    if item[0] == "sync":
                        item[1].set()
                if stop:
                    return
        finally:
            conn.close()

    def _write_batch(self, conn: sqlite3.Connection, items: list[_Item]) -> None:
        rows: list[tuple[str, int, float, bytes]] = []
        last: dict[str, int] = {}
        ends: list[tuple[str, str]] = []
        states: list[tuple[Any, ...]] = []
        count = 0
        for item in items:
            if item[0] == "events":
                _, session, run_id, events = item
                count += len(events)
                if self._runs.get(session) != run_id:  # a writer of a replaced run
                    self.counters.dropped += len(events)
                    continue
                rows.extend((session, e.seq, e.wall_time, e.data) for e in events)
                if events:
                    last[session] = events[-1].seq
            elif item[0] == "end":
                ends.append((item[2], item[1]))
            elif item[0] == "state":
                states.append(item[1:])

        def write(c: sqlite3.Connection) -> None:
            c.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", rows)
            c.executemany("UPDATE sessions SET last_seq = ? WHERE session = ?", [(v, k) for k, v in last.items()])
            c.executemany("UPDATE sessions SET ended = 1, end_reason = ? WHERE session = ?", ends)
            c.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", states)

        if self._guarded(conn, write):
            self.counters.written += len(rows)
        with self._count_lock:
            self._queued_events -= count

    def _guarded(self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], None]) -> bool:
        """One transaction; a failure (disk full, I/O) is logged and counted, the thread goes on."""
        try:
            with conn:  # the writer's own connection: no lock (WAL: readers go on beside it)
                work(conn)
            return True
        except sqlite3.Error as exc:
            self.counters.write_errors += 1
            log.error("event store %s: write failed: %s", self.path, exc)
            return False

    def _apply_retention(self, conn: sqlite3.Connection) -> None:
        r = self.retention
        if r.max_age:
            conn.execute("DELETE FROM events WHERE wall_time < ?", (time.time() - r.max_age,))
        if r.max_events:
            conn.execute(
                "DELETE FROM events WHERE (session, seq) IN (SELECT e.session, e.seq FROM events e "
                "JOIN sessions s ON s.session = e.session WHERE e.seq <= s.last_seq - ?)", (r.max_events,))
        if r.max_bytes:
            total = conn.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM events").fetchone()[0]
            excess = total - r.max_bytes
            while excess > 0:
                oldest = conn.execute("SELECT session, seq, LENGTH(data) FROM events "
                                      "ORDER BY wall_time, seq LIMIT 256").fetchall()
                if not oldest:
                    break
                doomed = []
                for session, seq, size in oldest:
                    doomed.append((session, seq))
                    excess -= size
                    if excess <= 0:
                        break
                conn.executemany("DELETE FROM events WHERE session = ? AND seq = ?", doomed)

    # ------------------------------------------------------------------ reading

    def _conn(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("the event store is not open")
        return self._reader

    async def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        def run() -> list[Any]:
            with self._lock:
                return self._conn().execute(sql, args).fetchall()
        return await asyncio.to_thread(run)

    async def read(self, session_id: str, after_seq: int, limit: int = READ_PAGE) -> list[StoredEvent]:
        rows = await self._query("SELECT seq, wall_time, data FROM events WHERE session = ? AND seq > ? "
                                 "AND wall_time >= ? ORDER BY seq LIMIT ?",
                                 (session_id, after_seq, self._cutoff(), limit))
        return [StoredEvent(seq, wall, bytes(data)) for seq, wall, data in rows]

    def _cutoff(self) -> float:
        """Events older than max_age are gone even before the writer deletes them."""
        return time.time() - self.retention.max_age if self.retention.max_age else 0.0

    async def last_seq(self, session_id: str) -> int:
        rows = await self._query("SELECT last_seq FROM sessions WHERE session = ?", (session_id,))
        return int(rows[0][0]) if rows else 0

    async def oldest_seq(self, session_id: str) -> int:
        rows = await self._query("SELECT MIN(seq) FROM events WHERE session = ? AND wall_time >= ?",
                                 (session_id, self._cutoff()))
        if rows and rows[0][0] is not None:
            return int(rows[0][0])
        return await self.last_seq(session_id) + 1

    async def session(self, session_id: str) -> SessionRecord | None:
        rows = await self._query("SELECT session, run_id, last_seq, ended, end_reason, meta FROM sessions "
                                 "WHERE session = ? AND run_id != ''", (session_id,))
        return _record(rows[0]) if rows else None

    async def sessions(self) -> list[SessionRecord]:
        rows = await self._query("SELECT session, run_id, last_seq, ended, end_reason, meta FROM sessions "
                                 "WHERE run_id != '' ORDER BY session", ())
        return [_record(row) for row in rows]

    async def put_state(self, session_id: str, key: str, value: str) -> None:
        def run() -> None:
            conn = self._conn()
            with self._lock, conn:
                conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", (session_id, key, value))
        await asyncio.to_thread(run)

    async def get_state(self, session_id: str, key: str) -> str | None:
        rows = await self._query("SELECT value FROM state WHERE session = ? AND key = ?", (session_id, key))
        return str(rows[0][0]) if rows else None


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread off: the reader connection is used from asyncio's worker
    # threads, one at a time (self._lock).
    conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level="DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
    return conn


def _meta_json(meta: SessionMeta) -> str:
    return json.dumps({"source": meta.source, "backend": meta.backend, "owner": meta.owner,
                       "viewers": list(meta.viewers), "started_at": meta.started_at})


def _record(row: tuple[Any, ...]) -> SessionRecord:
    session, run_id, last_seq, ended, reason, meta = row
    m = json.loads(meta)
    return SessionRecord(session, run_id, int(last_seq), bool(ended), reason,
                         SessionMeta(m.get("source", ""), m.get("backend", ""), m.get("owner"),
                                     tuple(m.get("viewers", ())), float(m.get("started_at", 0.0))))
