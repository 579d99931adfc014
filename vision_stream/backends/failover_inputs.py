"""The failover chain's input side: forward to the current link, keep what a new link is shown.

The chain keeps no frame queue of its own (the pipeline's mailbox is the one
latest-wins point). While it switches, nothing is forwarded: a frame is
dropped (counted once a newer one supersedes it) and only a reference to the
newest is kept; one prompt waits (``prompts.replaces``: final > client > scene
= retry > cadence). A new link is then shown the recent commentary (when its
session :class:`~vision_stream.backends.base.CarriesOver`), the newest frame
and the waiting prompt, or else the failed link's unanswered one (asked once
more: no turn lost, none asked twice).

Which link is current, and what a failure does, belong to the switcher
(``failover_switch``): it hands this class a ``receiver`` (the link inputs go
to, or None while switching) and an ``on_failure`` callback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import BackendError
from ..media.types import AudioChunk, SampledFrame
from .base import BackendCounters, BackendSession, CarriesOver
from .prompts import replaces

__all__ = ["ActiveLink", "LinkInputs", "Prompt"]

Prompt = tuple[str, str, float | None]  # (text, reason, media time)


@dataclass(eq=False, slots=True)
class ActiveLink:
    """A link's open session and what the chain knows about it."""

    index: int
    name: str
    session: BackendSession
    pump: asyncio.Task[None] | None = None  # the task forwarding its events
    last_prompt: Prompt | None = None
    answered: bool = True
    failing: bool = False
    failure: BackendError | None = None  # why it failed, when an error object said so
    absorbed: bool = False  # its counters moved into the chain's totals
    closing: bool = False  # the chain is closing it at the end of the session


class LinkInputs:
    """Frames, audio, prompts and tool results on their way to the current link (see module)."""

    def __init__(self, carry_over: int, *, receiver: Callable[[], ActiveLink | None],
                 on_failure: Callable[[ActiveLink, str, BackendError], None]) -> None:
        self._receiver = receiver
        self._on_failure = on_failure
        self.latest_frame: SampledFrame | None = None  # only to show the newest frame to a new link
        self.latest_forwarded = True  # the newest frame reached a link (else a newer one drops it)
        self.pending_prompt: Prompt | None = None
        self.commentary: deque[tuple[float | None, str]] = deque(maxlen=max(1, carry_over))
        self.frames_dropped = 0
        self.audio_chunks_dropped = 0

    def counters(self) -> BackendCounters:
        """The chain's own drops (the links count theirs)."""
        return BackendCounters(frames_dropped=self.frames_dropped, audio_chunks_dropped=self.audio_chunks_dropped)

    async def frame(self, frame: SampledFrame) -> None:
        """Forward a frame; while switching it is kept, and dropped (counted) when a newer one comes."""
        if not self.latest_forwarded:
            self.frames_dropped += 1
        self.latest_frame = frame
        self.latest_forwarded = await self.forward(lambda s: s.send_frame(frame))

    async def audio(self, chunk: AudioChunk) -> None:
        """Forward an audio chunk; dropped (counted) while switching."""
        if not await self.forward(lambda s: s.send_audio(chunk)):
            self.audio_chunks_dropped += 1

    async def forward(self, call: Callable[[BackendSession], Awaitable[None]]) -> bool:
        """Run ``call`` on the current link; False when switching (or it just failed)."""
        active = self._receiver()
        if active is None:
            return False
        try:
            await call(active.session)
        except BackendError as exc:
            self._on_failure(active, exc.message, exc)
            return False
        return True

    async def ask(self, wanted: Prompt, active: ActiveLink | None = None) -> None:
        """Prompt the current link (remembered there until answered); keep it while switching."""
        target = active or self._receiver()
        text, reason, media_time = wanted

        async def call(session: BackendSession) -> None:
            await session.prompt(text, reason=reason, media_time=media_time)
            if target is not None:
                target.last_prompt, target.answered = wanted, False

        if not await self.forward(call):
            pending = self.pending_prompt
            if replaces(reason, pending[1] if pending is not None else None):
                self.pending_prompt = wanted

    async def replay(self, active: ActiveLink, *, unanswered: Prompt | None) -> None:
        """Bring a new link up to date: commentary so far, the newest frame, the waiting prompt."""
        if isinstance(active.session, CarriesOver) and self.commentary:
            active.session.carry_over(list(self.commentary))
        frame = self.latest_frame
        if frame is not None:
            self.latest_forwarded = await self.forward(lambda s: s.send_frame(frame))
        wanted, self.pending_prompt = self.pending_prompt or unanswered, None
        if wanted is not None:
            await self.ask(wanted, active)
