"""The feed: items from the mailbox into the backend session, on the event loop.

Sampled frames and audio go to the backend in arrival order; each frame sent
asks :class:`~vision_stream.pipeline.cadence.CommentaryCadence` whether a
prompt is due (a cadence prompt logs a ``stats`` event first). The feed keeps
the session's :class:`~vision_stream.pipeline.stats.MediaClock` (the newest
media time handed to the backend), counts what it handed over, reports the first bad
packet, and passes a live source's status changes to the session.
"""

from __future__ import annotations

from collections.abc import Callable

from ..backends.base import BackendSession
from ..events import ErrorEvent, EventLog, Stats
from ..media.types import AudioChunk, BadPacket, SampledFrame, SourceStatus
from .cadence import CommentaryCadence
from .mailbox import Mailbox, MailboxClosed
from .reader import EndOfInput
from .stats import MediaClock, PipelineCounters

__all__ = ["Feed"]


class Feed:
    """Moves one session's items into its backend until the end of input."""

    def __init__(self, *, mailbox: Mailbox, backend: BackendSession, log: EventLog, counters: PipelineCounters,
                 media: MediaClock, cadence: CommentaryCadence, stats: Callable[[], Stats],
                 on_status: Callable[[SourceStatus], None],
                 on_prompt: Callable[[float], bool] | None = None,
                 on_frame: Callable[[SampledFrame], SampledFrame] | None = None) -> None:
        self._mailbox = mailbox
        self._backend = backend
        self._log = log
        self._counters = counters
        self._media = media
        self._cadence = cadence
        self._stats = stats
        self._on_status = on_status
        self._on_prompt = on_prompt  # before each cadence/scene prompt, with its media time: False holds it (budget)
        # Each frame as it goes to the backend (the session's frame ring): returns it with its id.
        self._on_frame = on_frame

    async def run(self) -> EndOfInput:
        """Feed until the source thread's EndOfInput (or the mailbox closes); return it."""
        while True:
            try:
                item = await self._mailbox.get()
            except MailboxClosed:
                return EndOfInput()
            if isinstance(item, EndOfInput):
                return item
            if isinstance(item, SampledFrame):
                await self._send_frame(item)
            elif isinstance(item, AudioChunk):
                self._media.note(item.media_time + item.duration)
                await self._backend.send_audio(item)
                self._counters.audio_chunks_sent += 1
            elif isinstance(item, BadPacket):
                self._bad_packet(item)
            elif isinstance(item, SourceStatus):
                self._on_status(item)

    async def _send_frame(self, frame: SampledFrame) -> None:
        t = frame.media_time
        self._media.note(t)
        if self._on_frame is not None:
            frame = self._on_frame(frame)  # kept as evidence: the frame now carries its id
        await self._backend.send_frame(frame)
        self._counters.frames_handed += 1
        reason = self._cadence.on_frame(t, frame.reason)
        if reason == "cadence":
            self._log.append(self._stats(), t)
        if reason is not None:
            if self._on_prompt is not None and not self._on_prompt(t):
                return  # held by the budget governor (pipeline/budget.py)
            self._counters.prompts_sent += 1
            await self._backend.prompt("", reason=reason, media_time=t)

    def _bad_packet(self, item: BadPacket) -> None:
        self._counters.bad_packets += 1
        if self._counters.bad_packets == 1:
            # Reported once; the running count is in stats and session_ended.
            self._log.append(
                ErrorEvent("bad_packet", f"skipped undecodable media: {item.message}", True), item.media_time
            )
