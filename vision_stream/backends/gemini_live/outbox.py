"""Bounded buffers between the pipeline and the socket (no I/O, no clocks of its own).

- video: a one-slot, newest-wins handoff; a frame replaced before it was sent
  counts as dropped (aiortc's relay with ``buffered=False``).
- audio: a bounded window; the oldest chunk is dropped (counted) when full, so a
  reconnect loses at most the part of the gap beyond the window.
- tool responses: answers we owe the model; bounded by the calls it made.
- prompts: at most one outstanding. Cadence/scene prompts coalesce (a new one
  is dropped while one waits or is answered); the newest client prompt is
  kept; "final" is kept and goes last (``prompts.SEND_ORDER``).

Times passed in are ``time.monotonic()`` seconds from the caller. What goes
out next, and when, is :mod:`.schedule`'s decision.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ...media.types import AudioChunk, SampledFrame
from ..prompts import SEND_ORDER


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
    """Everything waiting to be sent, bounded. ``audio_chunks``: the audio window size."""

    def __init__(self, *, audio_chunks: int) -> None:
        self.frame: PendingFrame | None = None
        self.audio: deque[AudioChunk] = deque(maxlen=audio_chunks)
        self.tool_responses: deque[tuple[str, str, dict[str, object]]] = deque(maxlen=256)
        self.audio_stream_end = False
        self.prompts = PromptQueue()
        self.frames_dropped = 0
        self.audio_dropped = 0
        self.tool_responses_dropped = 0

    def put_frame(self, frame: SampledFrame, now: float) -> None:
        if self.frame is not None:
            self.frames_dropped += 1  # newest wins
        self.frame = PendingFrame(frame, now)

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
    def media_pending(self) -> bool:
        return self.frame is not None or bool(self.audio) or self.audio_stream_end

    @property
    def empty(self) -> bool:
        return not (self.media_pending or self.tool_responses or self.prompts.pending)
