"""The in-memory event store (``--events memory``, tests): the contract without a disk.

Nothing survives the process, so after a restart every session starts a new
run. Appends are applied at once (a dict and a deque: nothing to queue).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .base import (
    READ_PAGE,
    Retention,
    RunInfo,
    SessionMeta,
    SessionRecord,
    StoreCounters,
    StoredEvent,
    new_run_id,
)


@dataclass(slots=True)
class _Session:
    record: SessionRecord
    events: deque[StoredEvent] = field(default_factory=deque)
    state: dict[str, str] = field(default_factory=dict)


class MemoryStore:
    name = "memory"

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self.counters = StoreCounters()
        self._sessions: dict[str, _Session] = {}
        # Every retained event in append order (session, seq, size): the store-wide byte bound
        # drops from its left, which is each session's oldest too.
        self._order: deque[tuple[str, int, int]] = deque()
        self._bytes = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def begin_run(self, session_id: str, *, resume: bool, meta: SessionMeta) -> RunInfo:
        known = self._sessions.get(session_id)
        if resume and known is not None and known.record.ended:
            known.record = replace(known.record, ended=False, end_reason="", meta=meta)
            return RunInfo(session_id, known.record.run_id, known.record.last_seq, continued=True)
        previous = known.record.run_id if known is not None else ""
        if known is not None:
            self._forget_events(session_id, known)
        record = SessionRecord(session_id, new_run_id(), 0, ended=False, meta=meta)
        self._sessions[session_id] = _Session(record, state=known.state if known is not None else {})
        return RunInfo(session_id, record.run_id, 0, continued=False, previous_run=previous)

    def append(self, session_id: str, run_id: str, events: Sequence[StoredEvent]) -> bool:
        self.counters.appended += len(events)
        entry = self._sessions.get(session_id)
        if entry is None or entry.record.run_id != run_id:
            # A writer of a replaced run (its session was restarted meanwhile): refused, counted.
            self.counters.dropped += len(events)
            return False
        for event in events:
            entry.events.append(event)
            self._order.append((session_id, event.seq, len(event.data)))
            self._bytes += len(event.data)
        entry.record = replace(entry.record, last_seq=events[-1].seq if events else entry.record.last_seq)
        self.counters.written += len(events)
        self._apply_retention(entry)
        return True

    def end_session(self, session_id: str, reason: str) -> None:
        entry = self._sessions.get(session_id)
        if entry is not None:
            entry.record = replace(entry.record, ended=True, end_reason=reason)

    async def flush(self) -> None:
        return None

    async def read(self, session_id: str, after_seq: int, limit: int = READ_PAGE) -> list[StoredEvent]:
        entry = self._sessions.get(session_id)
        if entry is None:
            return []
        self._expire(entry)
        events = entry.events
        if not events:
            return []
        start = max(after_seq + 1 - events[0].seq, 0)  # seqs are contiguous in the deque
        return [events[i] for i in range(start, min(len(events), start + limit))]

    async def last_seq(self, session_id: str) -> int:
        entry = self._sessions.get(session_id)
        return entry.record.last_seq if entry is not None else 0

    async def oldest_seq(self, session_id: str) -> int:
        entry = self._sessions.get(session_id)
        if entry is None:
            return 1
        self._expire(entry)
        return entry.events[0].seq if entry.events else entry.record.last_seq + 1

    async def session(self, session_id: str) -> SessionRecord | None:
        entry = self._sessions.get(session_id)
        return entry.record if entry is not None else None

    async def sessions(self) -> list[SessionRecord]:
        return [entry.record for entry in self._sessions.values()]

    async def put_state(self, session_id: str, key: str, value: str) -> None:
        self.set_state(session_id, key, value)

    def set_state(self, session_id: str, key: str, value: str) -> None:
        entry = self._sessions.get(session_id)
        if entry is None:
            entry = self._sessions[session_id] = _Session(SessionRecord(session_id, "", 0, ended=True))
        entry.state[key] = value

    async def get_state(self, session_id: str, key: str) -> str | None:
        entry = self._sessions.get(session_id)
        return entry.state.get(key) if entry is not None else None

    # ---------------------------------------------------------------- retention

    def _apply_retention(self, entry: _Session) -> None:
        self._compact_order()
        limit = self.retention.max_events
        while limit and len(entry.events) > limit:
            self._bytes -= len(entry.events.popleft().data)
        self._expire(entry)
        while self.retention.max_bytes and self._bytes > self.retention.max_bytes and self._order:
            session_id, seq, _size = self._order.popleft()
            owner = self._sessions.get(session_id)
            if owner is not None and owner.events and owner.events[0].seq == seq:
                self._bytes -= len(owner.events.popleft().data)

    def _compact_order(self) -> None:
        """Drop the order entries of events count/age retention already removed
        (so the order stays proportional to what is retained)."""
        retained = sum(len(entry.events) for entry in self._sessions.values()) if len(self._order) > 4096 else 0
        if len(self._order) > 2 * retained + 4096:
            oldest = {sid: (e.events[0].seq if e.events else e.record.last_seq + 1)
                      for sid, e in self._sessions.items()}
            self._order = deque(item for item in self._order if item[1] >= oldest.get(item[0], item[1] + 1))

    def _expire(self, entry: _Session) -> None:
        if not self.retention.max_age:
            return
        cutoff = time.time() - self.retention.max_age
        while entry.events and entry.events[0].wall_time < cutoff:
            self._bytes -= len(entry.events.popleft().data)

    def _forget_events(self, session_id: str, entry: _Session) -> None:
        self._bytes -= sum(len(e.data) for e in entry.events)
        entry.events.clear()
        self._order = deque(item for item in self._order if item[0] != session_id)
