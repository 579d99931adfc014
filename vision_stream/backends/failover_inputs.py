"""The failover chain's input side: forward to the current link, keep what a new link is shown.

The chain keeps a bounded *backlog*: the sampled frames and audio chunks sent
since the current link last answered (a final commentary about media time
``t`` settles what came up to ``t``), at most ``replay_frames`` frames and
``replay_audio`` chunks, the oldest falling out (counted as dropped if no link
ever saw them). While it switches, nothing is forwarded: inputs join the
backlog; one prompt waits (``prompts.replaces``: final > client > scene =
retry > cadence). After a failure the new link is shown the recent commentary
(when its session :class:`~vision_stream.backends.base.CarriesOver`), then the
backlog in arrival order (what the failed link saw but never answered, and
what came during the switch: so the offline analyzer, say, analyses the same
frames it would have without the failed link), then the waiting prompt, or
else the failed link's unanswered one (asked once more: no turn lost, none
asked twice). A link switched *up* to is shown the newest frame only (the link
it replaces answered the rest). Memory: a frame holds its decoded pixels
(about 1 MB at 768x432), so ``replay_frames`` bounds the backlog at ~16 MB.

Which link is current, and what a failure does, belong to the switcher
(``failover_switch``): it hands this class a ``receiver`` (the link inputs go
to, or None while switching) and an ``on_failure`` callback.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import count

from ..errors import BackendError
from ..media.types import AudioChunk, SampledFrame
from .base import BackendCounters, BackendSession, CarriesOver
from .prompts import replaces

__all__ = ["ActiveLink", "LinkInputs", "Prompt"]

Prompt = tuple[str, str, float | None]  # (text, reason, media time)


@dataclass(eq=False, slots=True)
class _Held:
    """One input in the backlog: arrival order, the input, whether a link received it."""

    seq: int
    item: SampledFrame | AudioChunk
    forwarded: bool


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
                 on_failure: Callable[[ActiveLink, str, BackendError], None],
                 replay_frames: int = 16, replay_audio: int = 600) -> None:
        self._receiver = receiver
        self._on_failure = on_failure
        self.latest_frame: SampledFrame | None = None  # the newest frame, shown to a link switched up to
        self.latest_forwarded = True  # the newest frame reached a link
        self._seq = count()
        self._frames: deque[_Held] = deque()  # the backlog (see module), bounded by hand: evictions count
        self._audio: deque[_Held] = deque()
        self._limits = (max(1, replay_frames), max(0, replay_audio))
        self.pending_prompt: Prompt | None = None
        self.commentary: deque[tuple[float | None, str]] = deque(maxlen=max(1, carry_over))
        self.frames_dropped = 0
        self.audio_chunks_dropped = 0

    def counters(self) -> BackendCounters:
        """The chain's own drops (the links count theirs)."""
        return BackendCounters(frames_dropped=self.frames_dropped, audio_chunks_dropped=self.audio_chunks_dropped)

    async def frame(self, frame: SampledFrame) -> None:
        """Forward a frame; it stays in the backlog until answered (while switching: until replayed)."""
        self.latest_frame = frame
        held = self._keep(self._frames, frame, self._limits[0])
        held.forwarded = self.latest_forwarded = await self.forward(lambda s: s.send_frame(frame))

    async def audio(self, chunk: AudioChunk) -> None:
        """Forward an audio chunk; it stays in the backlog until answered (while switching: until replayed)."""
        held = self._keep(self._audio, chunk, self._limits[1])
        held.forwarded = await self.forward(lambda s: s.send_audio(chunk))

    def _keep(self, backlog: deque[_Held], item: SampledFrame | AudioChunk, limit: int) -> _Held:
        held = _Held(next(self._seq), item, forwarded=False)
        backlog.append(held)
        while len(backlog) > limit:
            old = backlog.popleft()
            if not old.forwarded:  # no link ever saw it
                if isinstance(old.item, SampledFrame):
                    self.frames_dropped += 1
                else:
                    self.audio_chunks_dropped += 1
        return held

    def settled(self, media_time: float | None) -> None:
        """The current link answered about ``media_time``: what came up to then needs no replay."""
        if media_time is None:
            return
        for backlog in (self._frames, self._audio):
            while backlog and backlog[0].forwarded and backlog[0].item.media_time <= media_time:
                backlog.popleft()

    async def forward(self, call: Callable[[BackendSession], Awaitable[None]], to: ActiveLink | None = None) -> bool:
        """Run ``call`` on ``to`` (default: the current link); False when switching (or it just failed)."""
        active = to or self._receiver()
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

        if not await self.forward(call, to=active):
            pending = self.pending_prompt
            if replaces(reason, pending[1] if pending is not None else None):
                self.pending_prompt = wanted

    async def replay(self, active: ActiveLink, *, unanswered: Prompt | None, backlog: bool) -> None:
        """Bring a new link up to date: commentary so far, the backlog (``backlog``; else the
        newest frame), the waiting prompt. Inputs arriving meanwhile join the backlog and are
        replayed too, in order, as long as the switcher keeps the chain switching."""
        if isinstance(active.session, CarriesOver) and self.commentary:
            active.session.carry_over(list(self.commentary))
        if backlog:
            if not await self._replay_backlog(active):
                return
        else:
            frame = self.latest_frame
            if frame is not None:
                self.latest_forwarded = await self.forward(lambda s: s.send_frame(frame))
        wanted, self.pending_prompt = self.pending_prompt or unanswered, None
        if wanted is not None:
            await self.ask(wanted, active)

    async def _replay_backlog(self, active: ActiveLink) -> bool:
        """Send the whole backlog to ``active`` in arrival order; False when it failed meanwhile."""
        sent = -1
        while True:
            rest = [h for h in (*self._frames, *self._audio) if h.seq > sent]
            if not rest:
                return True
            held = min(rest, key=lambda h: h.seq)
            sent = held.seq
            item = held.item
            try:
                if isinstance(item, SampledFrame):
                    await active.session.send_frame(item)
                else:
                    await active.session.send_audio(item)
            except BackendError as exc:
                self._on_failure(active, exc.message, exc)
                return False
            held.forwarded = True
            if item is self.latest_frame:
                self.latest_forwarded = True
