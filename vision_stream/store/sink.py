"""The bridge from a session's :class:`~vision_stream.events.EventLog` to a store.

The log stays protobuf-free: this sink encodes each event once as the wire's
serialized ``pb.Event`` (``proto.event_to_wire``, run_id included), which is
both what the store keeps and what every follower is sent.
"""

from __future__ import annotations

from typing import Any

from ..events import Event, SessionEnded
from ..proto import event_to_wire
from .base import READ_PAGE, EventStore, RunInfo, StoredEvent


class StoreSink:
    """One session's writer into ``store`` under ``run`` (an ``events.EventSink``)."""

    def __init__(self, store: EventStore, run: RunInfo) -> None:
        self.store = store
        self.session_id = run.session_id
        self.run_id = run.run_id
        self.first_seq = run.last_seq + 1
        # A fleet takeover's fork point (old:seq:new, store/resume.py fork_covers), else None.
        self.fork = f"{run.previous_run}:{run.last_seq}:{run.run_id}" if run.continued and run.previous_run else None

    # The very function Stream/Watch pass to follow_encoded: one cached encoding for all.
    encode = staticmethod(event_to_wire)

    def write(self, event: Event, encoded: Any) -> bool:
        accepted = self.store.append(self.session_id, self.run_id, [StoredEvent(event.seq, event.wall_time, encoded)])
        if isinstance(event.payload, SessionEnded):
            self.store.end_session(self.session_id, event.payload.reason)
        return accepted

    async def history(self, after_seq: int, limit: int = READ_PAGE) -> list[tuple[int, Any]]:
        return [(e.seq, e.data) for e in await self.store.read(self.session_id, after_seq, limit)]
