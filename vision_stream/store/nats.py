"""The event store on NATS JetStream (``--events nats://HOST:PORT``): a fleet's shared log.

One stream (``VISION_STREAM_EVENTS``) holds every session's events on its own
subject ``vision-stream.events.<session>``; each message carries the
session's ``seq`` and ``run_id`` in headers (``Vs-Seq``, ``Vs-Run``) and a
``Nats-Msg-Id`` of session:run:seq, so a publish retried after a reconnect is
stored once (JetStream's duplicate window). The retention limits are the
stream's own: ``max_msgs_per_subject`` (per session), ``max_age`` and
``max_bytes`` (discard old). The run and ListSessions metadata live in a
key-value bucket (``vision-stream-sessions``), as does the small per-session
state (Live resumption handle, rolling summary).

Writes: ``append`` queues (bounded, counted when full) and a writer task
publishes pipelined (``publish_async``) and waits for the acks; a batch that
fails (server away) is retried, in order, until the connection gives up.
Reads locate the first wanted message by a binary search over the stream's
sequence with "next message on this subject" gets, then read on in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import deque
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, KeyValueConfig, RawStreamMsg, StorageType, StreamConfig
from nats.js.errors import BadRequestError, KeyNotFoundError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

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
from .nats_conn import JS_TIMEOUT, connect

log = logging.getLogger(__name__)

STREAM = "VISION_STREAM_EVENTS"
SUBJECT_PREFIX = "vision-stream.events"
BUCKET = "vision-stream-sessions"
QUEUE_EVENTS = 50_000
RETRY_WAIT = 0.5
BATCH_EVENTS = 1000  # events published before waiting for their acks

# A queued write: (session, run, events), an end marker (session, reason) or a state
# value (session, key, value, "state").
_Pending = tuple[str, str, list[StoredEvent]] | tuple[str, str] | tuple[str, str, str, str]
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def token(session_id: str) -> str:
    """A session id as one subject token and KV key: '.' and anything else outside
    [A-Za-z0-9_-] become =XX (hex), so ids never split a subject."""
    return _UNSAFE.sub(lambda m: "".join(f"={b:02X}" for b in m.group().encode()), session_id)


def subject(session_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{token(session_id)}"


class NatsStore:
    name = "nats"
    # Set by a fleet replica (vision_stream.fleet): a resumed run that did not end cleanly
    # (its owner died) is continued as a fork instead of a new run (see _fork).
    fork_unclean = False

    def __init__(self, url: str, retention: Retention | None = None, *, queue_events: int = QUEUE_EVENTS) -> None:
        self.url = url
        self.retention = retention or Retention()
        self.counters = StoreCounters()
        self._queue_events = queue_events
        self._pending: deque[_Pending] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._runs: dict[str, str] = {}
        self._records: dict[str, SessionRecord] = {}  # what this process last wrote to the bucket
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._writer: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        if self._client is not None:
            return
        self._client, self._js = await connect(self.url, name="vision-stream-events")
        config = StreamConfig(
            name=STREAM, subjects=[f"{SUBJECT_PREFIX}.>"], storage=StorageType.FILE, discard=DiscardPolicy.OLD,
            max_msgs_per_subject=self.retention.max_events or -1,
            max_age=self.retention.max_age or None, max_bytes=self.retention.max_bytes or -1,
            # JetStream wants the duplicate window within max_age.
            duplicate_window=min(120.0, self.retention.max_age or 120.0),
        )
        try:
            await self._js.add_stream(config)
        except BadRequestError:  # exists with other limits: these flags win
            await self._js.update_stream(config)
        self._kv = await self._js.create_key_value(KeyValueConfig(bucket=BUCKET, history=1,
                                                                  storage=StorageType.FILE))
        self._writer = asyncio.create_task(self._write_loop(), name="event-store-nats-writer")

    async def close(self) -> None:
        if self._client is None:
            return
        await self.flush()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self._client.close()
        self._client = self._js = self._kv = None

    def _jetstream(self) -> tuple[JetStreamContext, KeyValue]:
        if self._js is None or self._kv is None:
            raise RuntimeError("the NATS event store is not open")
        return self._js, self._kv

    # ------------------------------------------------------------------ writing

    async def begin_run(self, session_id: str, *, resume: bool, meta: SessionMeta) -> RunInfo:
        await self.flush()
        js, _kv = self._jetstream()
        known = await self.session(session_id)
        if resume and known is not None and known.ended:
            await self._put_record(session_id, known.run_id, known.last_seq, False, "", meta)
            self._runs[session_id] = known.run_id
            return RunInfo(session_id, known.run_id, known.last_seq, continued=True)
        if resume and known is not None and self.fork_unclean:
            return await self._fork(session_id, known, meta)
        run_id = new_run_id()
        await js.purge_stream(STREAM, subject=subject(session_id))
        await self._put_record(session_id, run_id, 0, False, "", meta)
        self._runs[session_id] = run_id
        return RunInfo(session_id, run_id, 0, continued=False, previous_run=known.run_id if known else "")

    async def _fork(self, session_id: str, known: SessionRecord, meta: SessionMeta) -> RunInfo:
        """A fleet replica taking over a camera whose owner died (vision_stream.fleet): what the
        stream acknowledged survived, so the seq continues after the last stored event, under a
        new run_id whose fork point ``(old run, seq)`` is kept in the session's state
        (``fork``: old:seq:new): a position of the old run up to that seq resumes in the new run; one past
        it (events the dead owner showed but never stored) is a stale run's (resume.py)."""
        js, _kv = self._jetstream()
        last = known.last_seq
        with contextlib.suppress(NotFoundError):
            msg = await js.get_last_msg(STREAM, subject(session_id))
            if (msg.headers or {}).get("Vs-Run") == known.run_id:
                last = max(last, _seq(msg))
        run_id = new_run_id()
        await self.put_state(session_id, "fork", f"{known.run_id}:{last}:{run_id}")
        await self._put_record(session_id, run_id, last, False, "", meta)
        self._runs[session_id] = run_id
        return RunInfo(session_id, run_id, last, continued=True, previous_run=known.run_id)

    def append(self, session_id: str, run_id: str, events: Sequence[StoredEvent]) -> bool:
        n = len(events)
        self.counters.appended += n
        if self._queued + n > self._queue_events:
            self.counters.dropped += n
            return False
        self._queued += n
        self.counters.queue_high = max(self.counters.queue_high, self._queued)
        self._pending.append((session_id, run_id, list(events)))
        self._kick()
        return True

    def end_session(self, session_id: str, reason: str) -> None:
        self._pending.append((session_id, reason))
        self._kick()

    def set_state(self, session_id: str, key: str, value: str) -> None:
        self._pending.append((session_id, key, value, "state"))
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wakeup.set()

    async def flush(self) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_TIMEOUT):
                await self._idle.wait()

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._take()
                try:
                    await self._write(batch)
                except (NatsTimeoutError, TimeoutError, ConnectionError, OSError) as exc:
                    # The server is away (or slow): the same batch again, in order; the
                    # Nats-Msg-Id makes a publish that did land count once.
                    self.counters.write_errors += 1
                    log.warning("event store (NATS): write failed, retrying: %s", exc)
                    await asyncio.sleep(RETRY_WAIT)
                    continue
                except Exception:
                    self.counters.write_errors += 1
                    log.exception("event store (NATS): write failed; batch dropped")
                for _ in batch:
                    item = self._pending.popleft()
                    if len(item) == 3:
                        self._queued -= len(item[2])
            self._idle.set()

    def _take(self) -> list[_Pending]:
        """The next batch: consecutive event items (up to BATCH_EVENTS), or one end marker or state value."""
        if len(self._pending[0]) != 3:
            return [self._pending[0]]
        batch: list[_Pending] = []
        count = 0
        for item in self._pending:
            if len(item) != 3 or count >= BATCH_EVENTS:
                break
            batch.append(item)
            count += len(item[2])
        return batch

    async def _write(self, batch: list[_Pending]) -> None:
        js, kv = self._jetstream()
        if len(batch[0]) == 4:
            session_id, key, value, _ = batch[0]  # type: ignore[misc]
            await kv.put(f"{token(session_id)}.state.{token(key)}", value.encode())
            return
        if len(batch[0]) == 2:
            session_id, reason = batch[0]
            known = self._records.get(session_id) or await self.session(session_id)
            if known is not None:
                await self._put_record(session_id, known.run_id, known.last_seq, True, reason, known.meta)
            return
        acks = []
        last: dict[str, int] = {}
        for item in batch:
            session_id, run_id, events = item  # type: ignore[misc]
            if self._runs.get(session_id) != run_id:
                self.counters.dropped += len(events)
                continue
            subj = subject(session_id)
            for e in events:
                # Pipelined: publish_async sends at once and returns the ack's future.
                acks.append(await js.publish_async(subj, e.data, headers={
                    "Vs-Seq": str(e.seq), "Vs-Run": run_id, "Vs-Time": repr(e.wall_time),
                    "Nats-Msg-Id": f"{token(session_id)}:{run_id}:{e.seq}"}))
            if events:
                last[session_id] = events[-1].seq
        # An ack lost with a connection never comes: bounded, then the batch is retried.
        try:
            async with asyncio.timeout(JS_TIMEOUT):
                await asyncio.gather(*acks)
        except BaseException:
            for ack in acks:
                ack.cancel()
            raise
        self.counters.written += len(acks)
        for session_id, seq in last.items():  # one record update per session and batch
            known = self._records.get(session_id) or await self.session(session_id)
            if known is not None:
                await self._put_record(session_id, known.run_id, seq, known.ended, known.end_reason, known.meta)

    async def _put_record(self, session_id: str, run_id: str, last_seq: int, ended: bool, reason: str,
                          meta: SessionMeta) -> None:
        _js, kv = self._jetstream()
        value = {"session": session_id, "run_id": run_id, "last_seq": last_seq, "ended": ended, "reason": reason,
                 "source": meta.source, "backend": meta.backend, "owner": meta.owner,
                 "viewers": list(meta.viewers), "started_at": meta.started_at}
        await kv.put(token(session_id), json.dumps(value).encode())
        self._records[session_id] = SessionRecord(session_id, run_id, last_seq, ended, reason, meta)

    # ------------------------------------------------------------------ reading

    async def _next(self, session_id: str, stream_seq: int) -> RawStreamMsg | None:
        """The session's first message at stream sequence >= ``stream_seq`` (None: none)."""
        js, _kv = self._jetstream()
        try:
            return await js.get_msg(STREAM, seq=max(stream_seq, 1), subject=subject(session_id), next=True)
        except NotFoundError:
            return None

    async def _first_after(self, session_id: str, after_seq: int) -> RawStreamMsg | None:
        """Binary search over the stream's sequence: the session's first message with seq > after_seq."""
        js, _kv = self._jetstream()
        state = (await js.stream_info(STREAM)).state
        lo, hi = state.first_seq, state.last_seq + 1
        found: RawStreamMsg | None = None
        while lo < hi:
            mid = (lo + hi) // 2
            msg = await self._next(session_id, mid)
            if msg is None:
                hi = mid
            elif _seq(msg) > after_seq:
                found, hi = msg, mid
            else:
                lo = (msg.seq or mid) + 1
        return found

    async def read(self, session_id: str, after_seq: int, limit: int = READ_PAGE) -> list[StoredEvent]:
        msg = await self._first_after(session_id, after_seq)
        out: list[StoredEvent] = []
        while msg is not None and len(out) < limit:
            out.append(StoredEvent(_seq(msg), float((msg.headers or {}).get("Vs-Time", "0")), msg.data or b""))
            if len(out) < limit:
                msg = await self._next(session_id, (msg.seq or 0) + 1)
        return out

    async def last_seq(self, session_id: str) -> int:
        known = await self.session(session_id)
        return known.last_seq if known is not None else 0

    async def oldest_seq(self, session_id: str) -> int:
        msg = await self._next(session_id, 1)
        return _seq(msg) if msg is not None else await self.last_seq(session_id) + 1

    async def session(self, session_id: str) -> SessionRecord | None:
        _js, kv = self._jetstream()
        try:
            entry = await kv.get(token(session_id))
        except KeyNotFoundError:
            return None
        return _record(entry.value or b"{}")

    async def sessions(self) -> list[SessionRecord]:
        _js, kv = self._jetstream()
        try:
            keys = await kv.keys()
        except NoKeysError:  # nats-py raises it on an empty bucket (it is no NotFoundError)
            return []
        records = []
        for key in sorted(k for k in keys if "." not in k):
            with contextlib.suppress(KeyNotFoundError):
                records.append(_record((await kv.get(key)).value or b"{}"))
        return records

    async def put_state(self, session_id: str, key: str, value: str) -> None:
        _js, kv = self._jetstream()
        await kv.put(f"{token(session_id)}.state.{token(key)}", value.encode())

    async def get_state(self, session_id: str, key: str) -> str | None:
        _js, kv = self._jetstream()
        try:
            entry = await kv.get(f"{token(session_id)}.state.{token(key)}")
        except KeyNotFoundError:
            return None
        return (entry.value or b"").decode()


def _seq(msg: RawStreamMsg) -> int:
    return int((msg.headers or {}).get("Vs-Seq", "0"))


def _record(raw: bytes) -> SessionRecord:
    v: dict[str, Any] = json.loads(raw)
    meta = SessionMeta(v.get("source", ""), v.get("backend", ""), v.get("owner"), tuple(v.get("viewers", ())),
                       float(v.get("started_at", 0.0)))
    return SessionRecord(v.get("session", ""), v.get("run_id", ""), int(v.get("last_seq", 0)),
                         bool(v.get("ended", False)), v.get("reason", ""), meta)
