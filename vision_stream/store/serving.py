"""The server's side of the store: attaching it to a starting session, Subscribe's
resume (run check, below the tail, ended sessions after a restart) and the ended
sessions ListSessions shows from it. Kept here so ``server/service.py`` only calls in.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import NotFoundError
from ..events import EventLog
from ..proto import event_to_wire
from ..v1 import vision_stream_pb2 as pb
from . import continuity
from .base import EventStore, SessionMeta, SessionRecord
from .resume import replay_ended, resume_after
from .sink import StoreSink

if TYPE_CHECKING:
    from ..config import SessionSettings
    from ..pipeline import Session
    from ..server.auth import Principal


async def begin(store: EventStore, session_id: str, *, resume: bool, owner: Principal | None,
                viewers: Iterable[str], source: str, backend: str) -> StoreSink:
    """Decide the starting session's run (a configured camera resumes its own) and return its sink."""
    meta = SessionMeta(source=source, backend=backend, owner=owner.name if owner is not None else None,
                       viewers=tuple(viewers), started_at=time.time())
    return StoreSink(store, await store.begin_run(session_id, resume=resume, meta=meta))


def persisting(start: Callable[[Session], object], sink: StoreSink) -> Callable[[Session], object]:
    """``start`` (the registry's), the session's log first writing through ``sink``."""
    def attach_and_start(session: Session) -> object:
        session.log.persist(sink, sink.first_seq)
        return start(session)
    return attach_and_start


async def continuing(store: EventStore, settings: SessionSettings,
                     start: Callable[[Session], object]) -> tuple[SessionSettings, Callable[[Session], object]]:
    """A configured camera's model session continues (store/continuity.py): ``settings`` with
    the stored Live handle and summary, and ``start`` keeping them current from the session."""
    writer = continuity.StateWriter(store, settings.session_id)
    resumption = await continuity.load(store, writer)

    def track_and_start(session: Session) -> object:
        continuity.track(session.log, writer, resumption.summary)
        return start(session)
    return replace(settings, resumption=resumption), track_and_start


def follow(log: EventLog, request: pb.SubscribeRequest) -> AsyncIterator[bytes]:
    """Subscribe on a running (or still registered) session: the run check, then the
    store below the in-memory tail, then live."""
    after = resume_after(log.session_id, request.after_seq, request.run_id, log.run_id, allow_gap=request.allow_gap,
                         fork=getattr(log.sink, "fork", None))
    if log.sink is not None:
        return log.follow_stored(after, allow_gap=request.allow_gap)
    return log.follow_encoded(event_to_wire, after, allow_gap=request.allow_gap)


def _visible(record: SessionRecord, principal: Principal) -> bool:
    from ..server.registry import Ownership

    return Ownership(record.meta.owner, frozenset(record.meta.viewers)).visible_to(principal)


async def subscribe_ended(store: EventStore, request: pb.SubscribeRequest,
                          principal: Principal) -> AsyncIterator[bytes]:
    """Subscribe on a session no process runs (ended, e.g. before a restart): from the store.
    NOT_FOUND alike for unknown and hidden sessions (as the registry does)."""
    record = await store.session(request.session_id)
    if record is None or not _visible(record, principal):
        raise NotFoundError(f"no session {request.session_id!r}")
    async for data in replay_ended(store, record, request.after_seq, request.run_id, allow_gap=request.allow_gap):
        yield data


async def ended_infos(store: EventStore, principal: Principal, running: Iterable[str],
                      *, fleet: bool = False) -> list[pb.SessionInfo]:
    """ListSessions' entries for the sessions only the store knows (state "ended"; in a
    fleet, "running" while not ended: another replica runs it)."""
    skip = set(running)
    infos = []
    for record in await store.sessions():
        if record.session_id in skip or not _visible(record, principal):
            continue
        info = pb.SessionInfo(session_id=record.session_id, source=record.meta.source, backend=record.meta.backend,
                              state="running" if fleet and not record.ended else "ended",
                              last_seq=record.last_seq, run_id=record.run_id,
                              last_error=record.end_reason if record.end_reason.startswith("failed") else "")
        info.started_at.FromNanoseconds(int(record.meta.started_at * 1e9))
        infos.append(info)
    return infos
