"""The Live backend session: the :class:`~vision_stream.backends.base.BackendSession` face.

One logical session over any number of connections. Input never waits for
the network: frames, audio, prompts and tool answers land in the core's
bounded buffers (:class:`~.schedule.SendSchedule`) and go out when a
connection is up, also across a reconnect. A *lossless* session
(``SessionSettings.lossless``: ``--fast``) waits instead, as at real time with
a service that keeps up: a frame waits for room and for the turn asked
before it to be answered, a pipeline prompt for the frames before it to be
written and the previous turn to end (never coalesced), so the model sees
the same frames and prompts, in media order, as in a real-time replay.
The connections themselves are the driver's (``driver.py``); this module
turns the core's events into session events and answers the contract:
``failure``, ``counters()``, ``events()``, ``close()`` (the shared chassis,
``backends/session_core.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace

from ...conditions.live import REPORT_CONDITION, verdict_from_call
from ...conditions.model import Condition
from ...config import SessionSettings
from ...errors import BackendError, ServiceError
from ...events import AudioOut, BackendEvent, Commentary, ErrorEvent, Transcript
from ...media.types import AudioChunk, SampledFrame
from ...pricing import estimate_cost
from ..base import BackendCounters
from ..gemini_api import bare_model_id
from ..prompts import conditions_changed, prompt_text
from ..session_core import SessionCore
from .commentary import resumed_context, setup_params
from .driver import LiveDriver
from .models import capabilities_for
from .outbox import PendingPrompt
from .protocol import BACKEND_NAME, HandleUpdated, LiveProtocol, ProtocolEvent, ToolCallRequested
from .schedule import SendSchedule
from .settings import LiveSettings

log = logging.getLogger("vision_stream.backends.gemini_live")

# A lossless session waiting for the service re-checks its failure this often
# (progress wakes it at once; a failure only ends the driver's tasks).
_LOSSLESS_RECHECK = 0.25


class LiveSession:
    """A :class:`~vision_stream.backends.base.BackendSession` on the Gemini Live API.

    Build with :meth:`open` (connects, sends setup, waits for ``setupComplete``;
    raises :class:`~vision_stream.errors.ServiceError` when the service refuses for good).
    """

    name = BACKEND_NAME

    def __init__(self, settings: LiveSettings, session: SessionSettings) -> None:
        self._settings = settings
        self._session = session
        model = session.model or settings.model
        self.model = bare_model_id(model)
        caps = capabilities_for(model)
        self._caps = caps
        setup = setup_params(settings, session, caps)
        resumption = session.resumption
        if resumption is not None and resumption.handle:  # a restarted camera resumes its session
            setup = replace(setup, resumption_handle=resumption.handle)
        protocol = LiveProtocol(setup, caps, want_audio_out=session.want_audio_out)
        self._protocol = protocol
        self._schedule = SendSchedule(
            protocol,
            audio_chunks=settings.audio_buffer_chunks,
            max_fps=settings.max_fps,
            go_away_margin=settings.reconnect.go_away_margin,
            response_timeout=settings.timeouts.response,
            client_functions=(spec.name for spec in session.functions),
            lossless=session.lossless,
            reissue_wait=settings.timeouts.reissue_wait,
            keepalive_interval=settings.keepalive_interval,
        )
        self._outbox = self._schedule.outbox
        self._lossless = session.lossless
        self._progress = asyncio.Event()  # something left the outbox, or the server answered
        self._outbox.on_progress = self._progress.set
        self._core = SessionCore(label="live session", session_id=session.session_id, event_queue=settings.event_queue)
        self._driver = LiveDriver(settings, self._schedule, self._core, self._dispatch)

    @classmethod
    async def open(cls, settings: LiveSettings, session: SessionSettings) -> LiveSession:
        """Connect (retrying transient failures per the policy) and start the session."""
        self = cls(settings, session)
        await self._start()
        return self

    async def _start(self) -> None:
        """Connect; a camera carried over a restart (``SessionSettings.resumption``) presents
        its stored handle first. A refused handle closes the connection before
        ``setupComplete`` (the emulator and Google: 1007, a permanent ending in endings.py),
        so the session starts fresh instead and is told what it saw: one retryable
        ``live_resume_failed`` event says so."""
        resumption = self._session.resumption
        presented = self._protocol.handle
        try:
            await self._driver.start()
        except ServiceError as exc:
            if resumption is None or presented is None or exc.retryable:
                raise
            log.info("live session %s: stored handle refused (%s); starting fresh", self._session.session_id,
                     exc.message)
            self._protocol.handle = None
            await self._driver.start()
            await self._started_fresh(resumption.summary, f"its stored handle was refused: {exc.message}")
            return
        if resumption is not None and presented is None and resumption.summary:
            await self._started_fresh(resumption.summary, "no stored handle younger than 2 hours")

    async def _started_fresh(self, summary: str, why: str) -> None:
        """The earlier session could not be resumed: say so, and prime the new one with the summary."""
        told = " and told what it saw before" if summary else ""
        message = f"Gemini Live could not resume this camera's earlier session ({why}); started a new one{told}"
        await self._core.events.put(ErrorEvent("live_resume_failed", message, retryable=True))
        if summary:
            # One realtimeInput.text, as set_conditions does: valid on every Live model
            # (clientContent mid-session is refused by 3.1), answered briefly as a turn.
            self._outbox.prompts.offer(PendingPrompt(resumed_context(summary), "client", None),
                                       turn_in_progress=self._protocol.turn_in_progress)
            self._driver.wakeup.set()

    # ---- protocol events -> session events -----------------------------------------------

    async def _dispatch(self, events: Sequence[ProtocolEvent]) -> None:
        """Payloads and detections go to ``events()``, stamped with the media time of the
        turn they answer; the core handled the rest (tool answers, goAway)."""
        media_time = self._schedule.turn_media_time
        frame_ids = self._schedule.turn_frame_ids  # the frames written before the turn's prompt
        self._progress.set()  # a turn may have ended, a lost connection put things back
        for event in events:
            if isinstance(event, HandleUpdated):
                self._handle_updated(event.handle)
            elif isinstance(event, Commentary) and event.final:
                await self._core.events.put(replace(event, frame_ids=frame_ids), media_time)
            elif isinstance(event, Commentary | Transcript | AudioOut | ErrorEvent):
                await self._core.events.put(event, media_time)
            elif isinstance(event, ToolCallRequested) and event.call.name == REPORT_CONDITION:
                verdict = verdict_from_call(event.call.args, BACKEND_NAME, frame_ids)
                if verdict is not None and not event.reissued:  # the pipeline's engine decides
                    await self._core.events.put(verdict, media_time)
            elif isinstance(event, ToolCallRequested) and not event.reissued:  # reported once
                await self._core.events.put(replace(event.detection, frame_ids=frame_ids), media_time)

    def _handle_updated(self, handle: str) -> None:
        """A newer resumable handle: handed to the server's hook (it stores it for a restart)."""
        resumption = self._session.resumption
        if resumption is not None and resumption.on_handle is not None:
            try:
                resumption.on_handle(handle)
            except Exception:  # the hook's failure must not end the session's receiver
                log.exception("live session %s: on_handle failed", self._session.session_id)

    # ---- BackendSession ------------------------------------------------------------------

    @property
    def failure(self) -> BackendError | None:
        """Why the session failed (verdict intact: ``code="quota"``, ``retry_after``), or None."""
        return self._core.failure

    async def send_frame(self, frame: SampledFrame) -> None:
        """Hand over a frame; the newest one waiting replaces an older one (counted).
        Lossless: wait for room and for the turn asked before it (module docstring)."""
        self._core.check_usable()
        if self._lossless:
            await self._until(lambda: self._outbox.frame_room and not self._turn_busy)
        self._outbox.put_frame(frame, time.monotonic())
        self._driver.wakeup.set()

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Hand over PCM16 16 kHz mono; the oldest waiting chunk drops beyond the window
        (lossless: waits for room in it)."""
        self._core.check_usable()
        if self._lossless:
            await self._until(lambda: self._outbox.audio_room)
        self._outbox.put_audio(chunk)
        self._driver.wakeup.set()

    async def end_audio(self) -> None:
        """The source's audio stopped: ``audioStreamEnd`` after the buffered audio."""
        self._core.check_usable()
        self._outbox.audio_stream_end = True
        self._driver.wakeup.set()

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Ask for commentary; at most one prompt is outstanding (see ``outbox.PromptQueue``).
        Lossless: a pipeline prompt waits for its turn instead of being coalesced."""
        self._core.check_usable()
        if self._lossless and reason != "client":
            await self._until(lambda: self._outbox.frame is None and not self._turn_busy)
        pending = PendingPrompt(prompt_text(text, reason), reason, media_time)
        self._outbox.prompts.offer(pending, turn_in_progress=self._protocol.turn_in_progress)
        self._driver.wakeup.set()

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        """Answer a client-declared function call (ignored if the model cancelled it)."""
        self._core.check_usable()
        self._outbox.put_tool_response(call_id, name, dict(response))
        self._driver.wakeup.set()

    def set_conditions(self, conditions: Sequence[Condition]) -> None:
        """The watch conditions changed at run time (SetConditions).

        The model is told at once in a ``realtimeInput.text`` (a prompt of rank "client":
        it is answered, briefly, as a turn), instead of waiting for a new setup: a setup only
        goes out with the next connection (a goAway rotation, minutes away), and a resumed
        session keeps its context, so the words must reach the model in-band anyway. The
        setup is updated too, so a fresh session (an expired handle) starts with them, and
        so ``report_condition`` is declared from the next connection on when the session
        opened without conditions (a declaration cannot change mid-connection).
        """
        self._core.check_usable()
        self._session = replace(self._session, conditions=tuple(conditions))
        self._protocol.update_setup(setup_params(self._settings, self._session, self._caps))
        pending = PendingPrompt(conditions_changed(self._session.conditions), "client", None)
        self._outbox.prompts.offer(pending, turn_in_progress=self._protocol.turn_in_progress)
        self._driver.wakeup.set()

    @property
    def _turn_busy(self) -> bool:
        """A prompt waits or its turn is being answered."""
        return self._protocol.turn_in_progress or self._outbox.prompts.pending

    async def _until(self, ready: Callable[[], bool]) -> None:
        """Lossless backpressure: wait until ``ready()``; raises the failure if the session fails meanwhile."""
        while True:
            self._core.check_usable()
            if ready():
                return
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LOSSLESS_RECHECK):
                    await self._progress.wait()

    def events(self) -> AsyncIterator[BackendEvent]:
        """Events as they come; ends after ``close()`` drained, or after a final ErrorEvent."""
        return aiter(self._core.events)

    async def close(self) -> None:
        """Send what is buffered, let the outstanding turn finish (bounded), then close."""
        if not self._core.begin_close():
            return
        await self._driver.close()
        self._core.events.end()

    def counters(self) -> BackendCounters:
        """Counts for Stats events (see ``backends.base``)."""
        outbox, schedule, driver = self._outbox, self._schedule, self._driver
        return BackendCounters(
            prompt_tokens=self._protocol.prompt_tokens,
            response_tokens=self._protocol.response_tokens,
            usage=self._protocol.usage,
            estimated_cost_usd=estimate_cost(self._protocol.usage, self.model),
            reconnects=driver.reconnects,
            frames_dropped=outbox.frames_dropped,
            frames_sent=schedule.frames_sent,
            audio_chunks_sent=schedule.audio_chunks_sent,
            audio_chunks_dropped=outbox.audio_dropped,
            prompts_sent=schedule.prompts_sent,
            prompts_coalesced=outbox.prompts.coalesced,
            connection_attempts=driver.connection_attempts,
        )

    # ---- measurements (tests and bench read these) ---------------------------------------

    @property
    def handle(self) -> str | None:
        """The newest resumable handle (valid for about 2 hours)."""
        return self._protocol.handle

    @property
    def connection_attempts(self) -> int:
        return self._driver.connection_attempts

    @property
    def reconnects(self) -> int:
        return self._driver.reconnects

    @property
    def handles_used(self) -> deque[str | None]:
        """The handle presented on each connection (None: a fresh session)."""
        return self._driver.handles_used

    @property
    def reconnect_gaps(self) -> deque[float]:
        """Seconds without a connection, per reconnect."""
        return self._driver.reconnect_gaps

    @property
    def frame_latencies(self) -> deque[float]:
        """Seconds from ``send_frame`` to the socket, per frame written (bounded)."""
        return self._driver.frame_latencies

    @frame_latencies.setter
    def frame_latencies(self, value: deque[float]) -> None:
        self._driver.frame_latencies = value  # bench swaps in a recording deque
