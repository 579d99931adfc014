"""Subscribe on a replica that does not run the session: follow it through the store.

Any replica serves ``Subscribe`` for any session by reading the shared store:
the stored events after the resume point, then, while the session runs
elsewhere, whatever its owner writes (the session's record, one KV get, is
polled every ``POLL`` seconds; its ``last_seq`` moves once JetStream
acknowledged the events, so a follower here never sees an event the store
does not hold).

Across a takeover (the owner died, another replica continues the camera) the
record's run changes. The rule:

- the new run is a *fork* of the one followed (store/nats.py ``_fork``) and the
  follower is at or below the fork point (always so for a follower reading the
  store): it goes on at the next seq, gap-free; events carry the new run_id from
  the fork point on;
- otherwise (a new run from seq 1): FAILED_PRECONDITION naming both runs
  (StaleRunError), or with ``allow_gap`` the new run from its first event.

A camera handed over cleanly (drain, rebalancing) ends its run with reason
``handover``; the follower does not stop there but waits for the next owner,
which continues the same run (its session_ended then session_started events
show the move).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ..errors import NotFoundError, ResumeAheadError, StaleRunError
from ..events import replay_history
from ..server.auth import Principal
from ..store.base import READ_PAGE, EventStore, SessionRecord
from ..store.resume import fork_covers, resume_after
from ..store.serving import _visible
from ..v1 import vision_stream_pb2 as pb

POLL = 0.2  # seconds between looks at a quiet session's record
# End reasons of a camera another replica goes on with (replica.py): the follower waits for it.
HANDED_OVER = frozenset({"handover", "lease lost"})


async def _record(store: EventStore, session_id: str, principal: Principal) -> SessionRecord:
    record = await store.session(session_id)
    if record is None or not _visible(record, principal):
        raise NotFoundError(f"no session {session_id!r}")
    return record


async def follow_store(store: EventStore, request: pb.SubscribeRequest, principal: Principal,
                       *, poll: float = POLL) -> AsyncIterator[bytes]:
    """The session's events from the store, following it live until it ends (see module doc)."""
    sid = request.session_id
    record = await _record(store, sid, principal)
    fork = await store.get_state(sid, "fork")
    cursor = resume_after(sid, request.after_seq, request.run_id, record.run_id, allow_gap=request.allow_gap,
                          fork=fork)
    if cursor > record.last_seq:
        raise ResumeAheadError(cursor, record.last_seq)
    run = record.run_id

    async def read(after: int, limit: int) -> list[tuple[int, bytes]]:
        return [(e.seq, e.data) for e in await store.read(sid, after, limit)]

    while True:
        if record.run_id != run:
            if fork_covers(await store.get_state(sid, "fork"), run, cursor, record.run_id):
                pass  # a takeover that kept the stored events: same numbering, go on
            elif request.allow_gap:
                cursor = 0  # a new run: its events say so by their run_id
            else:
                raise StaleRunError(sid, run, record.run_id)
            run = record.run_id
        if record.last_seq > cursor:
            async for seq, data in replay_history(read, cursor, record.last_seq, allow_gap=request.allow_gap,
                                                  page=READ_PAGE):
                cursor = seq
                yield data
            cursor = max(cursor, record.last_seq) if request.allow_gap else cursor
        elif record.ended and record.end_reason not in HANDED_OVER:
            return
        else:
            await asyncio.sleep(poll)
        record = await _record(store, sid, principal)


async def stored_sse_frames(store: EventStore | None, session_id: str, after_seq: int, allow_gap: bool,
                            principal: Principal) -> AsyncIterator[bytes]:
    """The HTTP side's SSE frames (server/http/sse.py's form) of a session another replica runs."""
    from ..server.http.jsonio import to_json

    if store is None:
        raise NotFoundError(f"no session {session_id!r}")
    request = pb.SubscribeRequest(session_id=session_id, after_seq=after_seq, allow_gap=allow_gap)
    async for data in follow_store(store, request, principal):
        event = pb.Event.FromString(data)
        yield f"id: {event.seq}\nevent: {event.WhichOneof('payload')}\ndata: {to_json(event)}\n\n".encode()
