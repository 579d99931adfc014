"""Internal event types and the per-session event log.

Backends and the pipeline produce *payloads* (the dataclasses below). The
session's :class:`EventLog` stamps each with ``seq`` (per session, from 1, no
gaps), wall time and media time, keeps a bounded retention window, and lets any
number of subscribers replay what they missed and then follow live.

Knows nothing about protobuf: ``server/convert.py`` maps these to the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .config import SamplingPolicy
from .errors import ResumeAheadError, RetentionGapError, UsageError
from .metrics import observe_fanout


@dataclass(frozen=True, slots=True)
class Region:
    """A box normalised to the frame: 0..1 from the top-left corner."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class SessionStarted:
    source: str
    backend: str
    model: str = ""
    sampling: SamplingPolicy | None = None
    commentary_interval: float = 0.0


@dataclass(frozen=True, slots=True)
class Commentary:
    text: str
    final: bool = True
    turn_id: str = ""
    backend: str = ""
    frame_ids: tuple[int, ...] = ()  # the sampled frames it is based on (GetFrames resolves them)


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    source: str = "input"  # "input" (heard in the source) or "output" (model speech)
    final: bool = True


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    description: str = ""
    severity: str = "info"  # info, low, medium, high
    confidence: float = 0.0
    region: Region | None = None
    backend: str = ""
    function_name: str = ""
    call_id: str = ""
    arguments_json: str = ""
    frame_ids: tuple[int, ...] = ()  # the sampled frames it is based on


@dataclass(frozen=True, slots=True)
class Verification:
    """A second opinion on an alert candidate (issue 12): its verdict and the latency it added."""

    requested: bool = False
    confirmed: bool = False
    confidence: float = 0.0
    evidence: str = ""
    backend: str = ""
    model: str = ""
    latency_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Alert:
    """A watch condition became true (state "fired") or, with notify_resolved, false again
    ("resolved"). Built-in camera-health conditions set ``builtin`` (vision_stream.conditions)."""

    condition_id: str
    condition: str
    state: str = "fired"  # "fired" or "resolved"
    confidence: float = 0.0
    evidence: str = ""
    backend: str = ""
    frame_ids: tuple[int, ...] = ()
    verification: Verification = field(default_factory=Verification)
    severity: str = "medium"
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class ConditionVerdict:
    """A backend's judgement of one watch condition at one moment (internal: the
    pipeline's condition engine turns verdicts into :class:`Alert` events; a
    verdict is never appended to an event log). confidence 0..1; frame_ids may be
    empty (the engine then names the frame at ``media_time``)."""

    condition_id: str
    met: bool
    confidence: float = 1.0
    evidence: str = ""
    backend: str = ""
    frame_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class AudioOut:
    pcm_s16le: bytes
    sample_rate: int = 24000
    turn_id: str = ""


@dataclass(frozen=True, slots=True)
class BackendChanged:
    from_backend: str
    to_backend: str
    reason: str


@dataclass(frozen=True, slots=True)
class Stats:
    frames_in: int = 0
    frames_sampled: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    audio_chunks_in: int = 0
    audio_chunks_sent: int = 0
    audio_chunks_dropped: int = 0
    bad_packets: int = 0
    prompts_sent: int = 0
    events: int = 0
    media_seconds: float = 0.0
    encode_ms_p50: float = 0.0
    encode_ms_p99: float = 0.0
    prompt_tokens: int = 0
    response_tokens: int = 0
    reconnects: int = 0
    fps_in: float = 0.0
    fps_out: float = 0.0
    source_state: str = ""
    source_outage_seconds: float = 0.0
    source_recoveries: int = 0
    usage: dict[str, int] = field(default_factory=dict)  # tokens by kind (vision_stream.usage)
    estimated_cost_usd: float = 0.0
    alerts: int = 0  # alert events (fired and resolved) so far
    alert_candidates_rejected: int = 0  # candidates a second opinion rejected


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    code: str
    message: str
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class SessionEnded:
    reason: str
    totals: Stats = field(default_factory=Stats)


Payload = (
    SessionStarted
    | Commentary
    | Transcript
    | Detection
    | AudioOut
    | BackendChanged
    | Stats
    | ErrorEvent
    | SessionEnded
    | Alert
    | ConditionVerdict
)


@dataclass(frozen=True, slots=True)
class BackendEvent:
    """What a backend session yields: a payload and the media time it refers to."""

    payload: Payload
    media_time: float | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A payload stamped by the session's event log."""

    session_id: str
    seq: int
    wall_time: float  # seconds since the epoch (for display only)
    media_time: float | None
    payload: Payload
    run_id: str = ""  # the run of the session this seq belongs to (vision_stream.store)

    @property
    def kind(self) -> str:
        return _KIND[type(self.payload)]


_KIND: dict[type, str] = {
    SessionStarted: "session_started",
    Commentary: "commentary",
    Transcript: "transcript",
    Detection: "detection",
    AudioOut: "audio_out",
    BackendChanged: "backend_changed",
    Stats: "stats",
    ErrorEvent: "error",
    SessionEnded: "session_ended",
    Alert: "alert",
}


T = TypeVar("T")

_NOT_ENCODED: Any = object()

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where a persisted log writes (``vision_stream.store.StoreSink``): the run its
    events belong to, their encoded form, and the history below the in-memory tail."""

    run_id: str

    def encode(self, event: Event) -> Any:
        """The stored (and wire) form of an event: computed once, shared with followers."""

    def write(self, event: Event, encoded: Any) -> bool:
        """Hand the event to the store; never blocks. False: the store refused it (behind)."""

    def history(self, after_seq: int, limit: int) -> Awaitable[list[tuple[int, Any]]]:
        """Stored (seq, encoded) pairs after ``after_seq``, oldest first, at most ``limit``."""


async def replay_history(
    read: Callable[[int, int], Awaitable[list[tuple[int, Any]]]], after_seq: int, until_seq: int,
    *, allow_gap: bool, page: int = 500,
) -> AsyncIterator[tuple[int, Any]]:
    """Stored events after ``after_seq`` up to ``until_seq``, paged, checked gap-free: a
    seq that is missing (left retention, or a write the store refused) raises
    :class:`RetentionGapError`, or with ``allow_gap`` is skipped over (never in silence:
    the caller sees the seq jump)."""
    cursor = after_seq
    while cursor < until_seq:
        batch = await read(cursor, min(page, until_seq - cursor))
        if not batch:
            if not allow_gap:
                raise RetentionGapError(cursor, until_seq + 1)
            return
        for seq, item in batch:
            if seq != cursor + 1 and not allow_gap:
                raise RetentionGapError(cursor, seq)
            cursor = seq
            yield seq, item


class EventLog:
    """Gap-free, bounded, resumable log of one session's events.

    ``retention`` bounds memory: the log keeps the newest ``retention`` events.
    Subscribers hold only a cursor (a seq), never a private queue, so a slow
    subscriber costs nothing; one that falls out of the window gets
    :class:`RetentionGapError` (or skips ahead with ``allow_gap``).

    :meth:`follow_encoded` serves many subscribers the same wire form of each
    event: it is computed once, on first demand, and kept beside the event
    (so it leaves the window with it: memory stays bounded by ``retention``).
    """

    def __init__(self, session_id: str, *, retention: int, sink: EventSink | None = None,
                 first_seq: int = 1) -> None:
        if retention < 1:
            raise UsageError(f"event retention must be >= 1, got {retention}")
        self.session_id = session_id
        # Persisted (a store's sink): events carry its run_id, seq continues from first_seq
        # (a continued run), and follow_stored reaches below the in-memory tail.
        self.sink = sink
        self.run_id = sink.run_id if sink is not None else ""
        self._store_behind = False
        self._pending_error: ErrorEvent | None = None  # store_behind, appended after the event it is about
        self._events: deque[Event] = deque(maxlen=retention)
        # The encoded form of each retained event (or _NOT_ENCODED), index-aligned
        # with _events: both are appended together and share maxlen.
        self._encoded: deque[Any] = deque(maxlen=retention)
        self._encoder: Callable[[Event], Any] | None = sink.encode if sink is not None else None
        self._last_seq = first_seq - 1
        self._closed = False
        # Replaced on every append: waiters hold the old one, which is set.
        self._wakeup = asyncio.Event()
        self.subscribers = 0
        # Called with each event as it is appended (vision_stream.metrics tallies); must not raise.
        self.observers: list[Callable[[Event], None]] = []

    def persist(self, sink: EventSink, first_seq: int = 1) -> None:
        """Write through ``sink`` from now on, seq continuing at ``first_seq``: the server
        attaches its store to a session's log once the run is decided, before the first event."""
        if self._last_seq or self._events:
            raise RuntimeError(f"event log of session {self.session_id} already has events")
        self.sink, self.run_id, self._encoder = sink, sink.run_id, sink.encode
        self._last_seq = first_seq - 1

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def oldest_seq(self) -> int:
        return self._events[0].seq if self._events else self._last_seq + 1

    @property
    def closed(self) -> bool:
        return self._closed

    def append(self, payload: Payload, media_time: float | None = None) -> Event:
        """Stamp and store a payload; wakes every subscriber. Never blocks."""
        if self._closed:
            raise RuntimeError(f"event log of session {self.session_id} is closed")
        self._last_seq += 1
        event = Event(self.session_id, self._last_seq, time.time(), media_time, payload, self.run_id)
        self._events.append(event)
        if self.sink is None:
            self._encoded.append(_NOT_ENCODED)
        else:
            self._persist(event)
        if isinstance(payload, SessionEnded):
            self._closed = True
        for observe in self.observers:
            observe(event)
        self._notify()
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            self.append(error, media_time)
        return event

    def _persist(self, event: Event) -> None:
        """Encode once (the store and every follower share it) and hand it to the store.
        A refusal is reported once per episode as a ``store_behind`` error event (kept in
        memory; the store sees the hole and a resume across it gets RetentionGapError)."""
        assert self.sink is not None
        encoded = self.sink.encode(event)
        self._encoded.append(encoded)
        if self.sink.write(event, encoded):
            self._store_behind = False
        elif not self._store_behind and not isinstance(event.payload, SessionEnded):
            self._store_behind = True
            message = (f"the event store is behind: event {event.seq} of session {self.session_id} "
                       "was not persisted (kept in memory only)")
            log.error("%s", message)
            self._pending_error = ErrorEvent("store_behind", message, retryable=True)

    def close(self) -> None:
        """Mark the log finished (no more events); subscribers drain then stop."""
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def snapshot(self, after_seq: int = 0) -> list[Event]:
        """Retained events with seq > after_seq (no waiting)."""
        return [e for e in self._events if e.seq > after_seq]

    def follow(self, after_seq: int = 0, *, allow_gap: bool = False) -> AsyncIterator[Event]:
        """Yield retained events after ``after_seq``, then live ones until the log closes."""
        return self._follow(after_seq, allow_gap, None)

    def follow_encoded(
        self, encode: Callable[[Event], T], after_seq: int = 0, *, allow_gap: bool = False
    ) -> AsyncIterator[T]:
        """As :meth:`follow`, yielding ``encode(event)``, computed once per event for
        every subscriber passing the same ``encode`` (the first one seen is cached;
        another function is applied per subscriber, uncached)."""
        if self._encoder is None:
            self._encoder = encode
        return self._follow(after_seq, allow_gap, encode)

    async def _follow(
        self, after_seq: int, allow_gap: bool, encode: Callable[[Event], Any] | None
    ) -> AsyncIterator[Any]:
        if after_seq > self._last_seq:
            raise ResumeAheadError(after_seq, self._last_seq)
        cursor = after_seq
        live = False  # set after the first wait: from then on batches are new events, not a replay
        self.subscribers += 1
        try:
            while True:
                events = self._events
                # A continued run's log starts empty after first_seq - 1: then last_seq + 1.
                oldest = events[0].seq if events else self._last_seq + 1
                if cursor + 1 < oldest:
                    if not allow_gap:
                        raise RetentionGapError(cursor, oldest)
                    cursor = oldest - 1
                if self._last_seq > cursor:
                    # Everything pending, taken at once (no await in between, so
                    # the indices hold); seqs are contiguous, so the batch ends
                    # at _last_seq.
                    batch = self._pending_after(cursor, encode)
                    if live:  # fan-out latency: append -> this subscriber taking it
                        observe_fanout(events[i] for i in range(len(events) - len(batch), len(events)))
                    cursor = self._last_seq
                    for item in batch:
                        yield item
                    continue
                if self._closed:
                    return
                await self._wakeup.wait()
                live = True
        finally:
            self.subscribers -= 1

    def follow_stored(self, after_seq: int = 0, *, allow_gap: bool = False) -> AsyncIterator[Any]:
        """As :meth:`follow_encoded` with the sink's encoding, reaching below the in-memory
        tail into the store (the events of earlier processes of a continued run too)."""
        if self.sink is None:
            raise RuntimeError(f"event log of session {self.session_id} is not persisted")
        return self._follow_stored(self.sink, after_seq, allow_gap)

    async def _follow_stored(self, sink: EventSink, after_seq: int, allow_gap: bool) -> AsyncIterator[Any]:
        if after_seq > self._last_seq:
            raise ResumeAheadError(after_seq, self._last_seq)
        cursor = after_seq
        if cursor + 1 < self.oldest_seq:
            # Below the tail: from the store, up to the tail's oldest as it is now (the
            # tail moves meanwhile; _follow then serves the rest, or reports the gap).
            async for seq, item in replay_history(sink.history, cursor, self.oldest_seq - 1, allow_gap=allow_gap):
                cursor = seq
                yield item
            if allow_gap:
                cursor = max(cursor, self.oldest_seq - 1)
        async for item in self._follow(cursor, allow_gap, sink.encode):
            yield item

    def _pending_after(self, cursor: int, encode: Callable[[Event], Any] | None) -> list[Any]:
        events = self._events
        # seqs are contiguous in the deque: index arithmetic instead of a scan;
        # deque indexing near the right end (where followers are) is cheap.
        start = max(cursor + 1 - events[0].seq, 0)
        if encode is None:
            return [events[i] for i in range(start, len(events))]
        if encode is not self._encoder:
            return [encode(events[i]) for i in range(start, len(events))]
        encoded = self._encoded
        out = []
        for i in range(start, len(events)):
            item = encoded[i]
            if item is _NOT_ENCODED:
                item = encoded[i] = encode(events[i])
            out.append(item)
        return out
