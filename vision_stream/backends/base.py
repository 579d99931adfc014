"""The one interface every analysis backend implements.

The pipeline and the failover chain see only :class:`Backend` and
:class:`BackendSession`; they cannot tell live, REST and offline apart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol, runtime_checkable

from ..conditions.model import Condition
from ..config import SessionSettings
from ..errors import BackendError
from ..events import BackendEvent
from ..media.types import AudioChunk, SampledFrame
from ..usage import Usage


@dataclass(frozen=True, kw_only=True, slots=True)
class BackendCounters:
    """What a backend session counted, for Stats events (a typed record: a
    misspelt field is an error, not a silent 0). Every field is a count since
    the session opened; a backend leaves what it does not do at 0."""

    prompt_tokens: int = 0
    response_tokens: int = 0
    reconnects: int = 0
    connection_attempts: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    audio_chunks_sent: int = 0
    audio_chunks_dropped: int = 0
    audio_chunks_ignored: int = 0
    prompts_sent: int = 0
    prompts_coalesced: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    # Tokens by kind, summed per turn as Google bills them, and their estimated
    # cost at this backend's model's prices (vision_stream.usage / .pricing).
    usage: Usage = field(default_factory=Usage)
    estimated_cost_usd: float = 0.0

    def __add__(self, other: BackendCounters) -> BackendCounters:
        """Field-wise sum (a failover chain adds up its links)."""
        return BackendCounters(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


@runtime_checkable
class CarriesOver(Protocol):
    """A backend session that accepts recent commentary from the link before it
    (the failover chain hands it over at a switch, for continuity)."""

    def carry_over(self, commentary: Sequence[tuple[float | None, str]]) -> None:
        """``commentary``: (media time, text) of recent final commentary, oldest first."""
        ...


@runtime_checkable
class JudgesConditions(Protocol):
    """A backend session that judges watch conditions itself (yielding
    ``ConditionVerdict`` payloads): told of every change of the session's set."""

    def set_conditions(self, conditions: Sequence[Condition]) -> None:
        """Replace the conditions being judged (the pipeline keeps their alert state)."""
        ...


def set_conditions(session: object, conditions: Sequence[Condition]) -> None:
    """Tell ``session`` its new conditions; a no-op for a backend that does not judge any."""
    if isinstance(session, JudgesConditions):
        session.set_conditions(conditions)


class BackendSession(Protocol):
    """One analysis session on one backend.

    ``send_*`` and ``prompt`` must not block the event loop (CPU work goes to a
    thread). They may raise :class:`~vision_stream.errors.BackendError` when the
    backend failed; ``events()`` then ends after yielding what it had, and the
    failover chain decides what next.

    ``SessionSettings.lossless`` (``--fast``, batch input): the session must not
    drop or coalesce what the pipeline hands it; ``send_*`` and pipeline
    prompts (not "client") *wait* (bounded buffers, awaited) until the backend
    can take them, so the model sees the same frames and prompts, in media
    order, as in a real-time replay with a backend that keeps up. Otherwise
    (live media) the newest frame wins and every drop is counted in
    ``counters().frames_dropped``: frames handed over and never analysed, each
    once (the pipeline reports sent = handed - dropped).
    """

    name: str  # "local", "live", "rest"
    model: str  # model name, or "" for the offline analyzer

    @property
    def failure(self) -> BackendError | None:
        """Why the session failed (its verdict intact), or None while it is usable."""
        ...

    def counters(self) -> BackendCounters:
        """What the session counted so far (the pipeline puts it into Stats events)."""
        ...

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
