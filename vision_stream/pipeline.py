"""A session: one media source wired to one backend session and one event log.

::

    source.items()  ──(source thread: pace, sample, encode)──▶ Mailbox ──▶ feed task ──▶ backend
                                                                                         │
    EventLog ◀──────────────────────────── event pump task ◀── backend.events() ◀───────┘

The source thread does the CPU work (decode, thumbnail probes, resize, JPEG)
so the event loop only moves finished items. Commentary prompts follow media
time (``commentary_interval``), so paced and ``--fast`` replays prompt at the
same points. Every session ends with exactly one ``session_ended`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .backends.base import Backend, BackendSession
from .config import Limits, SamplingPolicy, SessionSettings
from .errors import VisionStreamError
from .events import (
    BackendChanged,
    BackendEvent,
    ErrorEvent,
    EventLog,
    SessionEnded,
    SessionStarted,
    Stats,
)
from .mailbox import Mailbox, MailboxClosed
from .media.sampler import FrameSampler
from .media.types import AudioChunk, BadPacket, MediaSource, SampledFrame, SourceStatus, VideoFrame

log = logging.getLogger(__name__)

# Scene-change prompts closer than this (media seconds) to the previous prompt
# are skipped: the next cadence prompt will cover the change.
MIN_SCENE_PROMPT_GAP = 2.0
# How long close() may take to flush a backend's last events.
BACKEND_CLOSE_TIMEOUT = 30.0
# A file's audio is handed to the event loop in batches of this many media
# seconds (two 50 ms chunks): half the loop wake-ups and paced waits of one
# per chunk, for at most one chunk (<= 100 ms) of added audio latency.
AUDIO_BATCH_SECONDS = 0.1


class SessionState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ENDING = "ending"
    ENDED = "ended"
    FAILED = "failed"


class _EndOfInput:
    """Marker the source thread sends after the last item."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Pacer:
    """Source-speed replay clock: the first media item's time is anchored to the wall clock."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._first_media: float | None = None
        self._first_wall = 0.0

    def anchor(self, media_time: float) -> None:
        """The first media item seen starts the clock (later calls do nothing)."""
        if self._first_media is None:
            self._first_media, self._first_wall = media_time, time.monotonic()

    def wait_until(self, media_time: float) -> bool:
        """Sleep until ``media_time`` is due; False if the session was stopped meanwhile."""
        self.anchor(media_time)
        assert self._first_media is not None
        delay = (media_time - self._first_media) - (time.monotonic() - self._first_wall)
        return not (delay > 0 and self._stop.wait(delay))


@dataclass(kw_only=True, slots=True)
class _Counters:
    frames_in: int = 0
    frames_sampled: int = 0
    frames_sent: int = 0
    audio_chunks_in: int = 0
    audio_chunks_sent: int = 0
    bad_packets: int = 0
    prompts_sent: int = 0
    media_seconds: float = 0.0


class Session:
    """Runs one source through one backend into one event log.

    ``paced``: replay a non-live source at source speed (it stands in for a
    camera). ``lossless``: apply backpressure instead of dropping frames
    (batch work, ``--fast``); otherwise the newest frame wins.
    """

    def __init__(
        self,
        *,
        settings: SessionSettings,
        source: MediaSource,
        backend: Backend,
        sampling: SamplingPolicy,
        limits: Limits,
        paced: bool,
        lossless: bool,
    ) -> None:
        self.settings = settings
        self.session_id = settings.session_id
        self.source = source
        self.backend = backend
        self.sampling = sampling
        self.limits = limits
        self.paced = paced and not source.live
        self.lossless = lossless
        self.log = EventLog(self.session_id, retention=limits.event_retention)
        self.state = SessionState.STARTING
        self.started_at = time.time()
        self.last_error = ""
        self.source_state = ""  # live sources: connecting, streaming, reconnecting, failed
        self.next_attempt_at: float | None = None  # reconnecting: wall time (s) of the next attempt
        self._counters = _Counters()
        self._sampler = FrameSampler(sampling)
        self._mailbox = Mailbox(
            lossless=lossless,
            frame_slots=limits.frame_slots,
            audio_chunks=limits.audio_chunks,
            capacity=limits.lossless_queue,
        )
        self._stop = threading.Event()
        self._stop_reason = ""
        self._backend_session: BackendSession | None = None
        self._started_mono = 0.0
        self._next_prompt_at: float | None = None
        self._last_prompt_at: float | None = None
        self._first_media_time: float | None = None
        self._last_media_time = 0.0
        self._backend_name = backend.name
        self._done = asyncio.Event()
        self._source_recoveries = 0
        self._last_outage = 0.0
        self._on_end: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ control

    def stop(self, reason: str = "stopped") -> None:
        """Ask the session to end; ``run()`` then finishes with ``session_ended``."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            self.source.close()

    async def wait(self) -> None:
        await self._done.wait()

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the session has ended (at once if it has):
        what a session holds beyond its call (a client's slot) is given back here."""
        if self.ended:
            callback()
        else:
            self._on_end.append(callback)

    def input_failed(self, exc: VisionStreamError) -> None:
        """A client's input broke off with ``exc`` (bad message, timeout, rate):
        recorded as an ``error`` event before the session ends, so subscribers
        and ListSessions see why; what was accepted before goes on."""
        self.last_error = exc.message
        if not self.log.closed:
            self.log.append(ErrorEvent(exc.code, exc.message, exc.retryable), self._last_media_time)

    @property
    def stop_reason(self) -> str:
        return self._stop_reason

    @property
    def ended(self) -> bool:
        return self._done.is_set()

    async def client_prompt(self, text: str) -> None:
        """A client's question for the model; answered as commentary."""
        backend = self._backend_session
        if backend is not None and not self.ended:
            self._counters.prompts_sent += 1
            await backend.prompt(text, reason="client", media_time=self._last_media_time)

    async def tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        backend = self._backend_session
        if backend is not None and not self.ended:
            await backend.send_tool_result(call_id, name, response)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run to the end of input (or ``stop()``); never raises for media/backend failures."""
        reason = "end_of_input"
        try:
            reason = await self._run()
        except VisionStreamError as exc:
            self.state = SessionState.FAILED
            self.last_error = exc.message
            self.log.append(ErrorEvent(exc.code, exc.message, exc.retryable), self._last_media_time)
            reason = f"failed: {exc.message}"
        except asyncio.CancelledError:
            reason = self._stop_reason or "cancelled"
            self._finish(reason)
            raise
        except Exception as exc:  # a bug: report it in the session, keep the server up
            log.exception("session %s crashed", self.session_id)
            self.state = SessionState.FAILED
            self.last_error = f"internal error: {type(exc).__name__}"
            self.log.append(ErrorEvent("internal", self.last_error, False), self._last_media_time)
            reason = f"failed: {self.last_error}"
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        self.stop(reason)
        if not self.log.closed:
            self.log.append(SessionEnded(reason=reason, totals=self.stats()), self._last_media_time)
        if self.state is not SessionState.FAILED:
            # A live source that gave up (bad credentials, attempts exhausted) fails the session.
            self.state = SessionState.FAILED if self.source_state == "failed" else SessionState.ENDED
        self._done.set()
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a bug in a callback must not keep the others from running
                log.exception("session %s: end callback failed", self.session_id)

    async def _run(self) -> str:
        self._started_mono = time.monotonic()
        backend = await self.backend.open(self.settings)
        self._backend_session = backend
        self._backend_name = backend.name
        self.log.append(
            SessionStarted(
                source=self.source.description,
                backend=backend.name,
                model=backend.model,
                sampling=self.sampling,
                commentary_interval=self.settings.commentary_interval,
            )
        )
        self.state = SessionState.RUNNING
        loop = asyncio.get_running_loop()
        reader = threading.Thread(target=self._read_source, args=(loop,), name=f"source-{self.session_id}",
                                  daemon=True)
        pump = asyncio.create_task(self._pump_events(backend), name=f"events-{self.session_id}")
        try:
            reader.start()
            end = await self._feed(backend)
            self.state = SessionState.ENDING
            if end.error is not None and not self._stop.is_set():
                raise end.error
            await self._drain(backend)
            await asyncio.wait_for(asyncio.shield(pump), BACKEND_CLOSE_TIMEOUT)
        finally:
            self._mailbox.close()
            self._stop.set()
            self.source.close()
            if not pump.done():
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            # The reader thread ends promptly once the source is closed and the
            # mailbox refuses items; joining off the loop keeps the loop free.
            await asyncio.to_thread(reader.join, 5.0)
        pump_error = pump.exception() if pump.done() and not pump.cancelled() else None
        if pump_error is not None:
            raise pump_error
        return self._stop_reason or "end_of_input"

    async def _drain(self, backend: BackendSession) -> None:
        """End of input: last audio marker, a closing summary, then flush the backend."""
        if self._counters.audio_chunks_sent:
            await backend.end_audio()
        if not self._stop.is_set() or self._stop_reason == "end_of_input":
            self._counters.prompts_sent += 1
            await backend.prompt("", reason="final", media_time=self._last_media_time)
        self.log.append(self.stats(), self._last_media_time)
        await asyncio.wait_for(backend.close(), BACKEND_CLOSE_TIMEOUT)

    async def _pump_events(self, backend: BackendSession) -> None:
        async for event in backend.events():
            self._append_backend_event(event)

    def _append_backend_event(self, event: BackendEvent) -> None:
        if isinstance(event.payload, ErrorEvent):
            self.last_error = event.payload.message
        elif isinstance(event.payload, BackendChanged):
            self._backend_name = event.payload.to_backend  # ListSessions shows the link in use
        self.log.append(event.payload, event.media_time)

    async def _feed(self, backend: BackendSession) -> _EndOfInput:
        """Move items from the mailbox into the backend, prompting on cadence."""
        while True:
            try:
                item = await self._mailbox.get()
            except MailboxClosed:
                return _EndOfInput()
            if isinstance(item, _EndOfInput):
                return item
            if isinstance(item, SampledFrame):
                await self._on_frame(backend, item)
            elif isinstance(item, AudioChunk):
                self._note_media_time(item.media_time + item.duration)
                await backend.send_audio(item)
                self._counters.audio_chunks_sent += 1
            elif isinstance(item, BadPacket):
                self._on_bad_packet(item)
            elif isinstance(item, SourceStatus):
                self._on_source_status(item)

    async def _on_frame(self, backend: BackendSession, frame: SampledFrame) -> None:
        self._note_media_time(frame.media_time)
        await backend.send_frame(frame)
        self._counters.frames_sent += 1
        t = frame.media_time
        if self._next_prompt_at is None:
            self._next_prompt_at = t + self.settings.commentary_interval
        if t >= self._next_prompt_at:
            # Skip whole missed intervals rather than prompting in a burst.
            interval = self.settings.commentary_interval
            missed = int((t - self._next_prompt_at) // interval)
            self._next_prompt_at += (missed + 1) * interval
            self.log.append(self.stats(), t)
            await self._prompt(backend, "cadence", t)
        elif frame.reason == "scene" and (
            self._last_prompt_at is None or t - self._last_prompt_at >= MIN_SCENE_PROMPT_GAP
        ):
            await self._prompt(backend, "scene", t)

    async def _prompt(self, backend: BackendSession, reason: str, media_time: float) -> None:
        self._last_prompt_at = media_time
        self._counters.prompts_sent += 1
        await backend.prompt("", reason=reason, media_time=media_time)

    def _note_media_time(self, t: float) -> None:
        if self._first_media_time is None:
            self._first_media_time = t
        if t > self._last_media_time:
            self._last_media_time = t
        self._counters.media_seconds = max(0.0, self._last_media_time - self._first_media_time)

    def _on_bad_packet(self, item: BadPacket) -> None:
        self._counters.bad_packets += 1
        if self._counters.bad_packets == 1:
            # Reported once; the running count is in stats and session_ended.
            self.log.append(
                ErrorEvent("bad_packet", f"skipped undecodable media: {item.message}", True), item.media_time
            )

    def _on_source_status(self, status: SourceStatus) -> None:
        """A live source's connection changed: keep ListSessions state, log events.

        Going away (every failed attempt) is a retryable ``source_unavailable``
        error with the outage so far and the next attempt; coming back is a
        status event (``stats`` with ``source_state="streaming"`` and the
        outage's length); giving up is ``source_failed`` and ends the session
        as failed.
        """
        self.source_state = status.state
        self.next_attempt_at = None
        if status.state == "reconnecting":
            self.state = SessionState.RECONNECTING
            self.last_error = status.message
            if status.next_attempt_in is not None:
                self.next_attempt_at = time.time() + status.next_attempt_in  # display only
            self.log.append(ErrorEvent("source_unavailable", status.message, status.retryable),
                            self._last_media_time)
        elif status.state == "streaming":
            if self.state is SessionState.RECONNECTING:
                self.state = SessionState.RUNNING
                self._source_recoveries += 1
                self._last_outage = status.outage_seconds
                self.log.append(self.stats(), self._last_media_time)
        elif status.state == "failed":
            self.last_error = status.message
            if not self._stop.is_set():
                self._stop_reason = f"failed: {status.message}"
            self.log.append(ErrorEvent("source_failed", status.message, False), self._last_media_time)

    # ------------------------------------------------------------ source thread

    def _read_source(self, loop: asyncio.AbstractEventLoop) -> None:
        """Runs in the session's own thread: pace, sample, encode, hand over.

        Items go to the loop in batches: a file's audio chunks are collected
        until they span ``AUDIO_BATCH_SECONDS`` (or a sampled frame or another
        item comes), then handed over with one loop wake-up instead of one per
        chunk. Pacing waits once per batch, until the media time of its newest
        item, so nothing is handed over earlier than before; frames that are
        not sampled are never waited for (the sampler's decisions depend on
        media time only). Live sources arrive at source speed already: their
        items are handed over one by one, as they come.
        """
        end = _EndOfInput()
        pending: list[object] = []
        pacer = _Pacer(self._stop) if self.paced else None
        batch_audio = not self.source.live
        batch: list[object] = []
        due: float | None = None  # media time of the newest media item in the batch
        audio_seconds = 0.0  # audio in the batch, seconds
        try:
            for item in self.source.items():
                if self._stop.is_set():
                    break
                if pacer is not None and isinstance(item, VideoFrame | AudioChunk):
                    pacer.anchor(item.media_time)
                if isinstance(item, VideoFrame):
                    self._counters.frames_in += 1
                    decision = self._sampler.decide(item)
                    if decision is None:
                        continue
                    self._counters.frames_sampled += 1
                    due = item.media_time if due is None else max(due, item.media_time)
                    if pacer is not None and not pacer.wait_until(due):
                        break
                    batch.append(self._sampler.encode(item, decision, decoded_at=time.monotonic()))
                elif isinstance(item, AudioChunk):
                    self._counters.audio_chunks_in += 1
                    batch.append(item)
                    due = item.media_time if due is None else max(due, item.media_time)
                    audio_seconds += item.duration
                    if batch_audio and audio_seconds < AUDIO_BATCH_SECONDS - 1e-9:
                        continue
                    if pacer is not None and not pacer.wait_until(due):
                        break
                else:
                    batch.append(item)
                    if pacer is not None and due is not None and not pacer.wait_until(due):
                        break
                self._hand_over(loop, batch)
                batch, due, audio_seconds = [], None, 0.0
            else:
                if batch and (pacer is None or due is None or pacer.wait_until(due)):
                    self._hand_over(loop, batch)
        except MailboxClosed:
            return
        except BaseException as exc:  # surfaced in the session, never lost in a thread
            end = _EndOfInput(exc)
            pending = batch  # what was read before the failure still goes first
        with contextlib.suppress(MailboxClosed, RuntimeError):
            self._hand_over(loop, [*pending, end], force=True)

    def _hand_over(self, loop: asyncio.AbstractEventLoop, items: list[object], *, force: bool = False) -> None:
        """Put ``items`` (in order) into the mailbox from the source thread: one loop wake-up."""
        if self.lossless or force:
            future = asyncio.run_coroutine_threadsafe(self._put_all(items), loop)
            while True:
                try:
                    future.result(timeout=0.5)
                    return
                except TimeoutError:
                    if self._stop.is_set() and not force:
                        future.cancel()
                        raise MailboxClosed from None
        else:
            loop.call_soon_threadsafe(self._put_latest, items)

    async def _put_all(self, items: list[object]) -> None:
        for item in items:
            await self._mailbox.put(item)

    def _put_latest(self, items: list[object]) -> None:
        with contextlib.suppress(MailboxClosed):
            for item in items:
                self._mailbox.put_nowait(item)

    # -------------------------------------------------------------------- stats

    def stats(self) -> Stats:
        c = self._counters
        extra: Mapping[str, int] = {}
        backend = self._backend_session
        counters = getattr(backend, "counters", None)
        if callable(counters):
            extra = counters()
        elapsed = max(time.monotonic() - self._started_mono, 1e-9) if self._started_mono else 0.0
        p50, p99 = self._sampler.encode_percentile(50), self._sampler.encode_percentile(99)
        return Stats(
            frames_in=c.frames_in,
            frames_sampled=c.frames_sampled,
            frames_sent=c.frames_sent,
            frames_dropped=self._mailbox.frames_dropped + int(extra.get("frames_dropped", 0)),
            audio_chunks_in=c.audio_chunks_in,
            audio_chunks_sent=c.audio_chunks_sent,
            audio_chunks_dropped=self._mailbox.audio_dropped + int(extra.get("audio_chunks_dropped", 0)),
            bad_packets=c.bad_packets,
            prompts_sent=c.prompts_sent,
            events=self.log.last_seq,
            media_seconds=round(c.media_seconds, 3),
            encode_ms_p50=round(p50, 3),
            encode_ms_p99=round(p99, 3),
            prompt_tokens=int(extra.get("prompt_tokens", 0)),
            response_tokens=int(extra.get("response_tokens", 0)),
            reconnects=int(extra.get("reconnects", 0)),
            fps_in=round(c.frames_in / elapsed, 2) if elapsed else 0.0,
            fps_out=round(c.frames_sent / elapsed, 2) if elapsed else 0.0,
            source_state=self.source_state,
            source_outage_seconds=round(self._last_outage, 3),
            source_recoveries=self._source_recoveries,
        )

    @property
    def backend_name(self) -> str:
        return self._backend_name

