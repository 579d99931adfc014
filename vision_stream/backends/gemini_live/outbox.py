"""Bounded buffers between the pipeline and the socket (no I/O, no clocks of its own).

- video: a one-slot, newest-wins handoff; a frame replaced before it was sent
  counts as dropped (aiortc's relay with ``buffered=False``).
- audio: a bounded window; the oldest chunk is dropped (counted) when full, so a
  reconnect loses at most the part of the gap beyond the window.
- tool responses: answers we owe the model; bounded by the calls it made.
- prompts: at most one outstanding. Cadence/scene prompts coalesce (a new one
  is dropped while one waits or is answered); the newest client prompt is
  kept; "final" is kept and goes last.

Times passed in are ``time.monotonic()`` seconds from the caller.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ...media.types import AudioChunk, SampledFrame


@dataclass(frozen=True, slots=True)
class PendingFrame:
    frame: SampledFrame
    queued_at: float  # monotonic seconds when handed over


@dataclass(frozen=True, slots=True)
class PendingPrompt:
    text: str
    reason: str  # "cadence", "scene", "client", "final", or "retry"
    media_time: float | None = None


class PromptPolicy:
    """Decides which prompt goes next; the session asks only when no turn is in progress."""

    def __init__(self) -> None:
        self._client: PendingPrompt | None = None
        self._auto: PendingPrompt | None = None
        self._final: PendingPrompt | None = None
        self._retry: PendingPrompt | None = None
        self.coalesced = 0

    def offer(self, prompt: PendingPrompt, *, turn_in_progress: bool) -> bool:
        """Queue a prompt; False when it was coalesced away (counted)."""
        if prompt.reason == "client":
            if self._client is not None:
                self.coalesced += 1  # an older client prompt nobody answered yet
            self._client = prompt
            return True
        if prompt.reason == "final":
            self._final = prompt
            if self._auto is not None:
                self._auto = None
                self.coalesced += 1
            return True
        if turn_in_progress or self.pending:
            self.coalesced += 1
            return False
        self._auto = prompt
        return True

    def retry(self, prompt: PendingPrompt) -> None:
        """A prompt whose turn was cut by a lost connection goes again first."""
        self._retry = prompt

    @property
    def pending(self) -> bool:
        return any(p is not None for p in (self._retry, self._client, self._auto, self._final))

    def pop(self) -> PendingPrompt | None:
        for name in ("_retry", "_client", "_auto", "_final"):
            prompt = getattr(self, name)
            if prompt is not None:
                setattr(self, name, None)
                return prompt
        return None


class Outbox:
    """Everything waiting to be sent, bounded. ``audio_chunks``: the audio window size."""

    def __init__(self, *, audio_chunks: int) -> None:
        self.frame: PendingFrame | None = None
        self.audio: deque[AudioChunk] = deque(maxlen=audio_chunks)
        self.tool_responses: deque[tuple[str, str, dict[str, object]]] = deque(maxlen=256)
        self.audio_stream_end = False
        self.prompts = PromptPolicy()
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
