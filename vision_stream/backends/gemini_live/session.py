"""The Live backend session: one logical session over any number of connections.

A thin asyncio driver around :class:`~.protocol.LiveProtocol`. A supervisor
task owns the current connection; per connection a :class:`asyncio.TaskGroup`
runs a receiver (server frames -> protocol -> events), a sender (outbox ->
protocol -> socket) and a watchdog (goAway deadline, stalled server). When a
connection ends, the supervisor classifies how (``retry.py``), resumes with the
newest handle, or gives up: then ``events()`` ends after an ErrorEvent and every
``send_*`` raises :class:`BackendError` so the failover chain can move on.

Input never waits for the network: frames, audio and prompts land in bounded
buffers (``outbox.py``) and go out when a connection is up, also across a
reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ...config import SessionSettings
from ...errors import BackendError, ProtocolError, ServiceError, SessionError
from ...events import BackendChanged, BackendEvent, ErrorEvent, Payload
from ...media.types import AudioChunk, SampledFrame
from ...redact import scrub
from ..event_stream import EventStream
from .commentary import prompt_text, setup_params
from .connection import ConnectFailed, ending_of, open_websocket
from .models import bare_model_id, capabilities_for
from .outbox import Outbox, PendingPrompt
from .protocol import (
    BACKEND_NAME,
    REPORT_EVENT,
    GoAwayReceived,
    LiveProtocol,
    Output,
    ProtocolEvent,
    SessionState,
    SetupCompleted,
    ToolCallRequested,
    ToolCallsCancelled,
    TurnEnded,
)
from .retry import Backoff, Ending, is_transient
from .settings import LiveSettings

log = logging.getLogger("vision_stream.backends.gemini_live")

_E = TypeVar("_E", bound=BaseException)


class _Ended(Exception):
    """Internal: the current connection is over (how, in ``ending``)."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.label)
        self.ending = ending


class LiveSession:
    """A :class:`~vision_stream.backends.base.BackendSession` on the Gemini Live API.

    Build with :meth:`open` (connects, sends setup, waits for ``setupComplete``;
    raises :class:`ServiceError` when the service refuses for good).
    """

    name = BACKEND_NAME

    def __init__(self, settings: LiveSettings, session: SessionSettings) -> None:
        self._settings = settings
        self._session = session
        model = session.model or settings.model
        self.model = bare_model_id(model)
        caps = capabilities_for(model)
        self._protocol = LiveProtocol(
            setup_params(settings, session, caps), caps, want_audio_out=session.want_audio_out
        )
        self._outbox = Outbox(audio_chunks=settings.audio_buffer_chunks)
        self._wakeup = asyncio.Event()
        self._events = EventStream(settings.event_queue)
        self._backoff = Backoff(settings.reconnect)
        self._client_functions = frozenset(spec.name for spec in session.functions) - {REPORT_EVENT}
        self._supervisor: asyncio.Task[None] | None = None
        self._failure: BackendError | None = None
        self._closing = False
        self._closed = False
        # Per connection:
        self._go_away_deadline: float | None = None
        self._go_away_seen = False
        self._last_server_at = 0.0
        self._next_frame_at = 0.0
        # What the current turn refers to (media time of its prompt / last frame sent).
        self._last_media_time: float | None = None
        self._turn_media_time: float | None = None
        # Counters and measurements (bounded).
        self.connection_attempts = 0
        self.reconnects = 0
        self.frames_sent = 0
        self.audio_chunks_sent = 0
        self.prompts_sent = 0
        self.handles_used: deque[str | None] = deque(maxlen=256)  # handle presented per connection
        self.reconnect_gaps: deque[float] = deque(maxlen=256)  # seconds without a connection
        self.frame_latencies: deque[float] = deque(maxlen=4096)  # seconds, send_frame -> socket

    # ---- opening -------------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: LiveSettings, session: SessionSettings) -> LiveSession:
        """Connect (retrying transient failures per the policy) and start the session."""
        self = cls(settings, session)
        ws = await self._connect_with_retry(limit=settings.reconnect.opening_attempts)
        self._supervisor = asyncio.create_task(self._supervise(ws), name=f"live-session-{session.session_id}")
        return self

    async def _connect_with_retry(self, *, limit: int | None, outage_since: float | None = None) -> ClientConnection:
        """Connect, retrying transient failures until ``limit`` consecutive failures (None: forever).

        ``outage_since``: when the running session lost its connection (None
        while opening); each failed attempt of an outage is reported.
        """
        while True:
            try:
                return await self._connect_once()
            except ConnectFailed as exc:
                ending = exc.ending
                if not is_transient(ending):
                    raise self._permanent_error(ending) from None
                delay = self._backoff.failed(ending)
                if limit is not None and self._backoff.failures >= limit:
                    raise ServiceError(
                        f"Gemini Live: gave up after {self._backoff.failures} failed connection attempts; "
                        f"last: {_bounded(ending.label)}",
                        status=ending.code or None,
                        retryable=True,
                    ) from None
                log.info("live connection attempt failed (%s); retrying in %.2f s", ending.label, delay)
                if outage_since is not None:
                    await self._report_attempt(ending, delay, outage_since)
                await asyncio.sleep(delay)

    async def _report_attempt(self, ending: Ending, delay: float, outage_since: float) -> None:
        """A retryable ``backend_unavailable`` event per failed attempt, when retrying forever.

        A bounded policy (the failover chain's link) reports once, when it
        gives up; the chain turns that into its own ``backend_changed``.
        """
        if self._settings.reconnect.max_attempts is not None:
            return
        failures = self._backoff.failures
        message = (
            f"Gemini Live unavailable for {time.monotonic() - outage_since:.1f} s ({_bounded(ending.label)}); "
            f"{failures} failed attempt{'' if failures == 1 else 's'}, next in {delay:.2f} s"
        )
        await self._emit(ErrorEvent("backend_unavailable", scrub(message, *self._settings.secrets()), retryable=True))

    async def _connect_once(self) -> ClientConnection:
        self.connection_attempts += 1
        ws = await open_websocket(self._settings)
        handle = self._protocol.handle
        try:
            setup = self._protocol.start_connection()
            self.handles_used.append(handle)
            async with asyncio.timeout(self._settings.timeouts.setup):
                await ws.send(setup)
                while True:
                    frame = await ws.recv()
                    events = self._protocol.receive(frame)
                    if any(isinstance(e, SetupCompleted) for e in events):
                        await self._dispatch_all(events)
                        break
                    await self._dispatch_all(events)
        except ConnectionClosed as exc:
            self._protocol.connection_lost()
            raise ConnectFailed(ending_of(exc, before_setup=True, go_away=False)) from None
        except TimeoutError:
            self._protocol.connection_lost()
            await ws.close()
            raise ConnectFailed(Ending(1006, "no setupComplete in time", before_setup=True, local=True)) from None
        except BaseException:
            self._protocol.connection_lost()
            await ws.close()
            raise
        self._go_away_deadline = None
        self._go_away_seen = False
        self._last_server_at = time.monotonic()
        log.info("live session %s connected (resumed=%s)", self._session.session_id, handle is not None)
        return ws

    # ---- supervisor ----------------------------------------------------------------------

    async def _supervise(self, ws: ClientConnection) -> None:
        try:
            while True:
                opened = time.monotonic()
                ending = await self._serve(ws)
                lost_at = time.monotonic()
                await self._connection_lost()
                if self._closing and self._outbox.empty and not self._protocol.turn_in_progress:
                    break
                if ending.local and ending.reason == "closing":
                    break
                if not is_transient(ending):
                    raise self._permanent_error(ending)
                if not ending.go_away:
                    if lost_at - opened >= self._settings.reconnect.stable_after:
                        self._backoff.stable()
                    delay = self._backoff.failed(ending)
                    if self._backoff.exhausted:
                        raise ServiceError(
                            f"Gemini Live: gave up after {self._backoff.failures} failures; "
                            f"last: {_bounded(ending.label)}",
                            status=ending.code or None,
                            retryable=True,
                        )
                    log.info("live connection ended (%s); reconnecting in %.2f s", ending.label, delay)
                    await self._report_attempt(ending, delay, lost_at)
                    await asyncio.sleep(delay)
                else:
                    log.info("live connection rotating after goAway")
                ws = await self._connect_with_retry(limit=self._settings.reconnect.max_attempts, outage_since=lost_at)
                self.reconnects += 1
                self.reconnect_gaps.append(time.monotonic() - lost_at)
                await self._emit(BackendChanged(BACKEND_NAME, BACKEND_NAME, ending.label))
        except BackendError as exc:
            await self._fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the pipeline waiting forever
            log.exception("live session supervisor crashed")
            await self._fail(ProtocolError(f"Gemini Live session failed: {type(exc).__name__}: {exc}"))
        finally:
            self._protocol.close()
            self._end_events()

    async def _serve(self, ws: ClientConnection) -> Ending:
        """Run one connection until it ends; returns how (the socket is closed after)."""
        ending: Ending | None = None
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._receiver(ws))
                tasks.create_task(self._sender(ws))
                tasks.create_task(self._watchdog())
        except BaseExceptionGroup as group:
            ended = _first_of(group, _Ended)
            if ended is None:
                await ws.close()
                failure = _first_of(group, BackendError)
                if failure is not None:
                    raise failure from None
                raise
            ending = ended.ending
        if ending is None:  # pragma: no cover - the tasks only end by raising
            ending = Ending(1006, "connection tasks ended", local=True)
        if ending.local:
            await self._close_draining(ws)  # 1000: our decision (goAway rotation, stall, close)
        return ending

    async def _close_draining(self, ws: ClientConnection) -> None:
        """Close with 1000 while still reading: whatever the server sent before it saw
        our close frame (a newer resumption handle, the rest of a turn) is processed,
        so the next connection resumes from the newest handle."""
        closer = asyncio.create_task(ws.close())
        try:
            while True:
                try:
                    frame = await ws.recv()
                except ConnectionClosed:
                    break
                await self._dispatch_all(self._protocol.receive(frame))
        finally:
            await closer

    async def _connection_lost(self) -> None:
        loss = self._protocol.connection_lost()
        await self._dispatch_all(list(loss.events))
        if loss.unanswered_prompt is not None:
            # The turn was cut before it finished: ask again on the next connection.
            self._outbox.prompts.retry(PendingPrompt(loss.unanswered_prompt, "retry", self._turn_media_time))

    # ---- per-connection tasks ------------------------------------------------------------

    async def _receiver(self, ws: ClientConnection) -> None:
        while True:
            try:
                frame = await ws.recv()
            except ConnectionClosed as exc:
                raise _Ended(ending_of(exc, before_setup=False, go_away=self._go_away_seen)) from None
            self._last_server_at = time.monotonic()
            if await self._dispatch_all(self._protocol.receive(frame)):
                raise _Ended(Ending(1000, "goAway", go_away=True, local=True))

    async def _sender(self, ws: ClientConnection) -> None:
        while True:
            self._wakeup.clear()
            try:
                sent = await self._send_next(ws)
            except ConnectionClosed as exc:
                raise _Ended(ending_of(exc, before_setup=False, go_away=self._go_away_seen)) from None
            if sent:
                continue
            if self._closing and self._outbox.empty and not self._protocol.turn_in_progress:
                raise _Ended(Ending(1000, "closing", local=True))
            delay = None
            if self._outbox.frame is not None:
                delay = max(0.0, self._next_frame_at - time.monotonic())
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    async def _send_next(self, ws: ClientConnection) -> bool:
        """Send the most urgent pending message; False when nothing may go now."""
        outbox, protocol = self._outbox, self._protocol
        if outbox.tool_responses:
            call_id, name, response = outbox.tool_responses.popleft()
            text = protocol.send_tool_response(call_id, name, response)
            if text is not None:
                await ws.send(text)
            return True
        if outbox.audio:
            chunk = outbox.audio[0]
            await ws.send(protocol.send_audio(chunk.pcm, rate=chunk.sample_rate))
            outbox.audio.popleft()  # only once written: a lost connection keeps it buffered
            self.audio_chunks_sent += 1
            return True
        now = time.monotonic()
        pending = outbox.frame
        if pending is not None and now >= self._next_frame_at:
            outbox.frame = None
            # Rate cap (LIVE_API.md "Media": about 1 frame a second): never above max_fps.
            self._next_frame_at = now + 1.0 / self._settings.max_fps
            try:
                await ws.send(protocol.send_video(pending.frame.jpeg))
            except ConnectionClosed:
                if outbox.frame is None:
                    outbox.frame = pending  # still the newest: keep it for the next connection
                raise
            self.frame_latencies.append(time.monotonic() - pending.queued_at)
            self.frames_sent += 1
            self._last_media_time = pending.frame.media_time
            return True
        if outbox.audio_stream_end and not outbox.audio:
            await ws.send(protocol.send_audio_stream_end())
            outbox.audio_stream_end = False
            return True
        if protocol.state is SessionState.ACTIVE and not protocol.turn_in_progress and outbox.prompts.pending:
            prompt = outbox.prompts.pop()
            assert prompt is not None
            self._turn_media_time = prompt.media_time if prompt.media_time is not None else self._last_media_time
            self._last_server_at = time.monotonic()  # the answer is due from now
            await ws.send(protocol.send_prompt(prompt.text))
            self.prompts_sent += 1
            return True
        return False

    async def _watchdog(self) -> None:
        timeout = self._settings.timeouts.response
        tick = min(0.1, timeout / 10)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._go_away_deadline is not None and now >= self._go_away_deadline:
                raise _Ended(Ending(1000, "goAway deadline", go_away=True, local=True))
            waiting = self._protocol.turn_in_progress and not self._protocol.pending_tool_calls
            if waiting and now - self._last_server_at > timeout:
                raise _Ended(Ending(1006, f"stalled: no answer for {timeout:g} s", local=True))

    # ---- protocol events -> session events -----------------------------------------------

    async def _dispatch_all(self, events: list[ProtocolEvent] | tuple[ProtocolEvent, ...]) -> bool:
        """Turn protocol events into session events; True when the connection should rotate now."""
        rotate = False
        for event in events:
            rotate = await self._dispatch(event) or rotate
        return rotate

    async def _dispatch(self, event: ProtocolEvent) -> bool:
        if isinstance(event, Output):
            await self._emit(event.payload, self._turn_media_time)
        elif isinstance(event, ToolCallRequested):
            await self._emit(event.detection, self._turn_media_time)
            call = event.call
            if call.name == REPORT_EVENT:
                self._outbox.put_tool_response(call.id, call.name, {"result": "ok"})
            elif call.name not in self._client_functions:
                self._outbox.put_tool_response(call.id, call.name, {"error": f"unknown function {call.name}"})
            self._wakeup.set()
        elif isinstance(event, ToolCallsCancelled):
            cancelled = set(event.ids)
            kept = [r for r in self._outbox.tool_responses if r[0] not in cancelled]
            self._outbox.tool_responses.clear()
            self._outbox.tool_responses.extend(kept)
        elif isinstance(event, GoAwayReceived):
            self._go_away_seen = True
            margin = self._settings.reconnect.go_away_margin
            left = event.time_left if event.time_left is not None else 0.0
            self._go_away_deadline = time.monotonic() + max(0.0, left - margin)
            log.info("live goAway: %s s left", event.time_left)
            # Rotate at the next turn boundary (now, if the model is not mid-turn).
            return not self._protocol.turn_in_progress
        elif isinstance(event, TurnEnded):
            self._wakeup.set()
            return self._go_away_seen
        return False

    async def _emit(self, payload: Payload, media_time: float | None = None) -> None:
        await self._events.put(payload, media_time)

    # ---- failure and end -----------------------------------------------------------------

    def _permanent_error(self, ending: Ending) -> ServiceError:
        what = "refused the connection" if ending.http else "closed the session"
        return ServiceError(
            scrub(f"Gemini Live {what}: {ending.label}", *self._settings.secrets()),
            status=ending.code or None,
            retryable=False,
        )

    async def _fail(self, exc: BackendError) -> None:
        self._failure = exc
        log.warning("live session %s failed: %s", self._session.session_id, exc.message)
        await self._emit(ErrorEvent(exc.code, exc.message, retryable=exc.retryable))

    def _end_events(self) -> None:
        self._events.end()

    def _check_usable(self) -> None:
        failure = self._failure
        if failure is not None:
            if isinstance(failure, ServiceError):
                raise ServiceError(failure.message, status=failure.status, retryable=failure.retryable)
            raise BackendError(failure.message, retryable=failure.retryable)
        if self._closing:
            raise SessionError("live session is closing")

    # ---- BackendSession ------------------------------------------------------------------

    async def send_frame(self, frame: SampledFrame) -> None:
        """Hand over a frame; the newest one waiting replaces an older one (counted)."""
        self._check_usable()
        self._outbox.put_frame(frame, time.monotonic())
        self._wakeup.set()

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Hand over PCM16 16 kHz mono; the oldest waiting chunk drops beyond the window."""
        self._check_usable()
        self._outbox.put_audio(chunk)
        self._wakeup.set()

    async def end_audio(self) -> None:
        """The source's audio stopped: ``audioStreamEnd`` after the buffered audio."""
        self._check_usable()
        self._outbox.audio_stream_end = True
        self._wakeup.set()

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Ask for commentary; at most one prompt is outstanding (see ``outbox.PromptPolicy``)."""
        self._check_usable()
        pending = PendingPrompt(prompt_text(text, reason), reason, media_time)
        self._outbox.prompts.offer(pending, turn_in_progress=self._protocol.turn_in_progress)
        self._wakeup.set()

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        """Answer a client-declared function call (ignored if the model cancelled it)."""
        self._check_usable()
        self._outbox.put_tool_response(call_id, name, dict(response))
        self._wakeup.set()

    def events(self) -> AsyncIterator[BackendEvent]:
        """Events as they come; ends after ``close()`` drained, or after a final ErrorEvent."""
        return aiter(self._events)

    async def close(self) -> None:
        """Send what is buffered, let the outstanding turn finish (bounded), then close."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._wakeup.set()
        task = self._supervisor
        if task is not None and not task.done():
            try:
                async with asyncio.timeout(self._settings.timeouts.close_flush):
                    await asyncio.shield(task)
            except TimeoutError:
                log.info("live session %s: final turn did not finish in time", self._session.session_id)
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._protocol.close()
        self._end_events()

    def counters(self) -> Mapping[str, int]:
        """Counts for Stats events (see ``backends.base``)."""
        outbox = self._outbox
        return {
            "prompt_tokens": self._protocol.prompt_tokens,
            "response_tokens": self._protocol.response_tokens,
            "reconnects": self.reconnects,
            "frames_dropped": outbox.frames_dropped,
            "frames_sent": self.frames_sent,
            "audio_chunks_sent": self.audio_chunks_sent,
            "audio_chunks_dropped": outbox.audio_dropped,
            "prompts_sent": self.prompts_sent,
            "prompts_coalesced": outbox.prompts.coalesced,
            "connection_attempts": self.connection_attempts,
        }

    @property
    def handle(self) -> str | None:
        """The newest resumable handle (valid for about 2 hours)."""
        return self._protocol.handle


def _bounded(text: str, limit: int = 200) -> str:
    """Server or socket text inside our messages, cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_of(group: BaseExceptionGroup, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_of(exc, kind)
            if found is not None:
                return found
    return None
