"""The Live backend session: the :class:`~vision_stream.backends.base.BackendSession` face.

One logical session over any number of connections. Input never waits for
the network: frames, audio, prompts and tool answers land in the core's
bounded buffers (:class:`~.schedule.SendSchedule`) and go out when a
connection is up, also across a reconnect. The connections themselves are the
driver's (``driver.py``); this module turns the core's events into session
events and answers the contract: ``failure``, ``counters()``, ``events()``,
``close()`` (the shared chassis, ``backends/session_core.py``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Sequence

from ...config import SessionSettings
from ...errors import BackendError
from ...events import AudioOut, BackendEvent, Commentary, Transcript
from ...media.types import AudioChunk, SampledFrame
from ..base import BackendCounters
from ..gemini_api import bare_model_id
from ..prompts import prompt_text
from ..session_core import SessionCore
from .commentary import setup_params
from .driver import LiveDriver
from .models import capabilities_for
from .outbox import PendingPrompt
from .protocol import BACKEND_NAME, LiveProtocol, ProtocolEvent, ToolCallRequested
from .schedule import SendSchedule
from .settings import LiveSettings


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
        protocol = LiveProtocol(setup_params(settings, session, caps), caps, want_audio_out=session.want_audio_out)
        self._protocol = protocol
        self._schedule = SendSchedule(
            protocol,
            audio_chunks=settings.audio_buffer_chunks,
            max_fps=settings.max_fps,
            go_away_margin=settings.reconnect.go_away_margin,
            response_timeout=settings.timeouts.response,
            client_functions=(spec.name for spec in session.functions),
        )
        self._outbox = self._schedule.outbox
        self._core = SessionCore(label="live session", session_id=session.session_id, event_queue=settings.event_queue)
        self._driver = LiveDriver(settings, self._schedule, self._core, self._dispatch)

    @classmethod
    async def open(cls, settings: LiveSettings, session: SessionSettings) -> LiveSession:
        """Connect (retrying transient failures per the policy) and start the session."""
        self = cls(settings, session)
        await self._driver.start()
        return self

    # ---- protocol events -> session events -----------------------------------------------

    async def _dispatch(self, events: Sequence[ProtocolEvent]) -> None:
        """Payloads and detections go to ``events()``, stamped with the media time of the
        turn they answer; the core handled the rest (tool answers, goAway)."""
        media_time = self._schedule.turn_media_time
        for event in events:
            if isinstance(event, Commentary | Transcript | AudioOut):
                await self._core.events.put(event, media_time)
            elif isinstance(event, ToolCallRequested):
                await self._core.events.put(event.detection, media_time)

    # ---- BackendSession ------------------------------------------------------------------

    @property
    def failure(self) -> BackendError | None:
        """Why the session failed (verdict intact: ``code="quota"``, ``retry_after``), or None."""
        return self._core.failure

    async def send_frame(self, frame: SampledFrame) -> None:
        """Hand over a frame; the newest one waiting replaces an older one (counted)."""
        self._core.check_usable()
        self._outbox.put_frame(frame, time.monotonic())
        self._driver.wakeup.set()

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Hand over PCM16 16 kHz mono; the oldest waiting chunk drops beyond the window."""
        self._core.check_usable()
        self._outbox.put_audio(chunk)
        self._driver.wakeup.set()

    async def end_audio(self) -> None:
        """The source's audio stopped: ``audioStreamEnd`` after the buffered audio."""
        self._core.check_usable()
        self._outbox.audio_stream_end = True
        self._driver.wakeup.set()

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Ask for commentary; at most one prompt is outstanding (see ``outbox.PromptQueue``)."""
        self._core.check_usable()
        pending = PendingPrompt(prompt_text(text, reason), reason, media_time)
        self._outbox.prompts.offer(pending, turn_in_progress=self._protocol.turn_in_progress)
        self._driver.wakeup.set()

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        """Answer a client-declared function call (ignored if the model cancelled it)."""
        self._core.check_usable()
        self._outbox.put_tool_response(call_id, name, dict(response))
        self._driver.wakeup.set()

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
