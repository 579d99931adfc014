"""Bounded buffers between the pipeline and the socket (no I/O, no clocks of its own).

- video: a one-slot, newest-wins handoff; a frame replaced before it was sent
  counts as dropped (aiortc's relay with ``buffered=False``). *Lossless* (a
  ``--fast`` replay): a FIFO of ``LOSSLESS_FRAME_SLOTS`` frames that never
  drops; the session waits for room (``frame_room``) instead, so the wire's
  rate cap paces the whole pipeline back to the reader.
- audio: a bounded window; the oldest chunk is dropped (counted) when full, so a
  reconnect loses at most the part of the gap beyond the window (lossless: the
  session waits for ``audio_room`` instead).
- tool responses: answers we owe the model; bounded by the calls it made.
- prompts: at most one outstanding. Cadence/scene prompts coalesce (a new one
  is dropped while one waits or is answered); the newest client prompt is
  kept; "final" is kept and goes last (``prompts.SEND_ORDER``).

Times passed in are ``time.monotonic()`` seconds from the caller. What goes
out next, and when, is :mod:`.schedule`'s decision; it takes items with the
``take_*`` methods, which call ``on_progress`` (a lossless session waiting
for room listens there).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ...media.types import AudioChunk, SampledFrame
from ..prompts import SEND_ORDER

# Frames a lossless outbox holds: enough to keep the socket busy while the
# feed hands over the next one, few enough that a slow service stops the reader.
LOSSLESS_FRAME_SLOTS = 2


@dataclass(frozen=True, slots=True)
class PendingFrame:
    frame: SampledFrame
    queued_at: float  # monotonic seconds when handed over


@dataclass(frozen=True, slots=True)
class PendingPrompt:
    text: str
    reason: str  # "cadence", "scene", "client", "final", or "retry"
    media_time: float | None = None


class PromptQueue:
    """One waiting prompt per kind (retry, client, auto, final), sent in
    ``SEND_ORDER``; asked only when no turn is in progress."""

    def __init__(self) -> None:
        self._waiting: dict[str, PendingPrompt] = {}  # kind (a SEND_ORDER entry) -> prompt
        self.coalesced = 0

    def offer(self, prompt: PendingPrompt, *, turn_in_progress: bool) -> bool:
        """Queue a prompt; False when it was coalesced away (counted)."""
        waiting = self._waiting
        if prompt.reason == "client":
            if "client" in waiting:
                self.coalesced += 1  # an older client prompt nobody answered yet
            waiting["client"] = prompt
            return True
        if prompt.reason == "final":
            waiting["final"] = prompt
            if waiting.pop("auto", None) is not None:
                self.coalesced += 1
            return True
        if turn_in_progress or self.pending:
            self.coalesced += 1
            return False
        waiting["auto"] = prompt
        return True

    def retry(self, prompt: PendingPrompt) -> None:
        """A prompt whose turn was cut by a lost connection goes again first."""
        self._waiting["retry"] = prompt

    @property
    def pending(self) -> bool:
        return bool(self._waiting)

    def pop(self) -> PendingPrompt | None:
        for kind in SEND_ORDER:
            prompt = self._waiting.pop(kind, None)
            if prompt is not None:
                return prompt
        return None


class Outbox:
    """Everything waiting to be sent, bounded. ``audio_chunks``: the audio window size.

    ``lossless``: frames queue (``LOSSLESS_FRAME_SLOTS``) instead of replacing
    each other; the caller waits for ``frame_room``/``audio_room`` rather than
    putting into a full buffer (see the module docstring).
    """

    def __init__(self, *, audio_chunks: int, lossless: bool = False) -> None:
        self.lossless = lossless
        self.frames: deque[PendingFrame] = deque()
        self._frame_slots = LOSSLESS_FRAME_SLOTS if lossless else 1
        self.audio: deque[AudioChunk] = deque(maxlen=audio_chunks)
        self.tool_responses: deque[tuple[str, str, dict[str, object]]] = deque(maxlen=256)
        self.audio_stream_end = False
        self.prompts = PromptQueue()
        self.frames_dropped = 0
        self.audio_dropped = 0
        self.tool_responses_dropped = 0
        self.on_progress: Callable[[], None] = _nothing  # called when a frame, chunk or prompt leaves

    # ---- input -------------------------------------------------------------------------

    def put_frame(self, frame: SampledFrame, now: float) -> None:
        if not self.lossless and self.frames:
            self.frames.clear()
            self.frames_dropped += 1  # newest wins
        self.frames.append(PendingFrame(frame, now))

    def put_audio(self, chunk: AudioChunk) -> None:
        if len(self.audio) == self.audio.maxlen:
            self.audio_dropped += 1  # deque drops the oldest
        self.audio.append(chunk)
        self.audio_stream_end = False

    def put_tool_response(self, call_id: str, name: str, response: dict[str, object]) -> None:
        if len(self.tool_responses) == self.tool_responses.maxlen:
            self.tool_responses_dropped += 1
        self.tool_responses.append((call_id, name, response))

    @property
    def frame_room(self) -> bool:
        """A frame can be put without dropping one."""
        return len(self.frames) < self._frame_slots

    @property
    def audio_room(self) -> bool:
        """A chunk can be put without dropping one."""
        return len(self.audio) < (self.audio.maxlen or 0)

    # ---- output (the schedule's side) --------------------------------------------------

    @property
    def frame(self) -> PendingFrame | None:
        """The frame that goes next (None: no frame waits)."""
        return self.frames[0] if self.frames else None

    def take_frame(self) -> PendingFrame:
        """Remove the next frame: it is being written."""
        pending = self.frames.popleft()
        self.on_progress()
        return pending

    def put_back(self, pending: PendingFrame) -> None:
        """A frame whose write was cut: it goes first again, unless (newest wins) a newer one came."""
        if self.lossless:
            self.frames.appendleft(pending)
        elif not self.frames:
            self.frames.append(pending)

    def take_audio(self, chunk: AudioChunk | None) -> None:
        """``chunk`` was written: it leaves the window (unless the window dropped it meanwhile)."""
        if self.audio and self.audio[0] is chunk:
            self.audio.popleft()
        self.on_progress()

    def take_prompt(self) -> PendingPrompt | None:
        """The prompt to ask now (``SEND_ORDER``), or None."""
        prompt = self.prompts.pop()
        if prompt is not None:
            self.on_progress()
        return prompt

    @property
    def media_pending(self) -> bool:
        return bool(self.frames) or bool(self.audio) or self.audio_stream_end

    @property
    def empty(self) -> bool:
        return not (self.media_pending or self.tool_responses or self.prompts.pending)


def _nothing() -> None:
    """The default ``on_progress``: nobody waits."""
