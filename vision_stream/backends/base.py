"""The one interface every analysis backend implements.

The pipeline and the failover chain see only :class:`Backend` and
:class:`BackendSession`; they cannot tell live, REST and offline apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ..config import SessionSettings
from ..events import BackendEvent
from ..media.types import AudioChunk, SampledFrame


class BackendSession(Protocol):
    """One analysis session on one backend.

    ``send_*`` and ``prompt`` must not block the event loop (CPU work goes to a
    thread). They may raise :class:`~vision_stream.errors.BackendError` when the
    backend failed; ``events()`` then ends after yielding what it had, and the
    failover chain decides what next.
    """

    name: str  # "local", "live", "rest"
    model: str  # model name, or "" for the offline analyzer

    # Optional: ``counters() -> Mapping[str, int]`` with any of "prompt_tokens",
    # "response_tokens", "reconnects", "frames_dropped"; the pipeline merges
    # them into Stats events (read with getattr, so backends may omit it).

    async def send_frame(self, frame: SampledFrame) -> None:
        """Hand over one sampled frame (JPEG + pixels)."""
        ...

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Hand over one chunk of PCM16 16 kHz mono audio."""
        ...

    async def end_audio(self) -> None:
        """The source's audio stopped (Live: ``audioStreamEnd``)."""
        ...

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Ask for commentary. ``reason``: "cadence", "scene", "client", "final".

        ``text`` is empty for the pipeline's own prompts (the backend phrases
        them); a client's prompt carries its text.
        """
        ...

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        """Answer a function call the model made (a client-declared function)."""
        ...

    def events(self) -> AsyncIterator[BackendEvent]:
        """Events as the backend produces them; ends after ``close()`` drained."""
        ...

    async def close(self) -> None:
        """Finish: flush pending output into ``events()``, then release resources."""
        ...


class Backend(Protocol):
    """Opens backend sessions; one instance may serve many sessions."""

    name: str

    async def open(self, settings: SessionSettings) -> BackendSession:
        ...
