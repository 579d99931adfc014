"""A scripted analysis backend for tests: no network, no model, no clock of its own.

Like httpx's ``MockTransport``, it stands where the real thing stands (any
place that takes a :class:`~vision_stream.backends.base.Backend`: the
pipeline, the failover chain) and does what a script says, so rules built on
top of backends (switching, probing, replaying) are tested in milliseconds::

    from vision_stream.errors import ServiceError
    from vision_stream.testing.fake_backend import FakeBackend, FakeOpen

    refused = ServiceError("quota", code="quota", retry_after=0.2, http_status=429)
    live = FakeBackend("live", [FakeOpen(error=refused), FakeOpen()])  # first open refused, then fine
    rest = FakeBackend("rest", FakeOpen(raise_on_frame=3))  # every session fails on its 3rd frame
    chain = FailoverBackend([Link("live", live), Link("rest", rest)])

Script: one :class:`FakeOpen` per ``open()`` call, in order; the last one
repeats for every later call. A session answers each prompt with one final
:class:`~vision_stream.events.Commentary` (``turn_id`` "<name>-<n>", text from
``reply``), unless the script makes it fail or stall. What the backend and its
sessions received is recorded (``FakeBackend.opened_at``, ``FakeSession.frames``,
``prompts``, ``audio``, ``tool_results``, ``carried``) for assertions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import BackendCounters
from ..backends.session_core import SessionCore
from ..config import SessionSettings
from ..errors import BackendError, ServiceError, UsageError
from ..events import BackendEvent, Commentary
from ..media.types import AudioChunk, SampledFrame

__all__ = ["FakeBackend", "FakeOpen", "FakeSession"]


def _default_reply(turn: int, text: str, reason: str) -> str:
    return f"answer {turn} to {reason}" + (f": {text}" if text else "")


@dataclass(frozen=True, kw_only=True)
class FakeOpen:
    """What one ``open()`` does, and how the session it opens behaves.

    error: ``open()`` raises this (a refused connection, a bad key, a quota).
    open_delay: seconds ``open()`` takes first (a slow connect and setup).
    raise_on_frame / raise_on_prompt: the Nth ``send_frame`` / ``prompt`` call
        (1-based) raises ``failure``; the session is failed from then on.
    fail_on_answer: the Nth prompt's turn ends the session instead of an
        answer: an ``error`` event, then ``events()`` ends (``failure`` is set).
    fail_after: seconds after opening at which the session fails the same way
        unasked (a dropped connection).
    failure: the error of the three above (its verdict: code, retry_after).
    answer_delay: seconds each turn takes before its answer (a turn in flight).
    stall: prompts are recorded but never answered.
    reply: the answer text for (turn number, prompt text, reason).
    """

    error: BackendError | None = None
    open_delay: float = 0.0
    raise_on_frame: int | None = None
    raise_on_prompt: int | None = None
    fail_on_answer: int | None = None
    fail_after: float | None = None
    failure: BackendError = field(default_factory=lambda: ServiceError("scripted failure", retryable=True))
    answer_delay: float = 0.0
    stall: bool = False
    reply: Callable[[int, str, str], str] = _default_reply


class FakeBackend:
    """A :class:`~vision_stream.backends.base.Backend` that follows a script (see module)."""

    def __init__(self, name: str, script: FakeOpen | Sequence[FakeOpen] = FakeOpen(), *, model: str = "fake-model",
                 event_queue: int = 256) -> None:
        self.name = name
        self.model = model
        self.script = (script,) if isinstance(script, FakeOpen) else tuple(script)
        if not self.script:
            raise UsageError("a fake backend needs at least one FakeOpen")
        self.event_queue = event_queue
        self.opened_at: list[float] = []  # monotonic time of every open() call, refused or not
        self.sessions: list[FakeSession] = []  # every session opened

    def step(self, index: int) -> FakeOpen:
        """The script entry of the ``index``-th open (0-based; the last entry repeats)."""
        return self.script[min(index, len(self.script) - 1)]

    async def open(self, settings: SessionSettings) -> FakeSession:
        step = self.step(len(self.opened_at))
        self.opened_at.append(time.monotonic())
        if step.open_delay:
            await asyncio.sleep(step.open_delay)
        if step.error is not None:
            raise step.error.clone()  # a fresh copy, verdict intact
        session = FakeSession(self.name, self.model, step, settings, self.event_queue)
        self.sessions.append(session)
        return session


class FakeSession:
    """One scripted :class:`~vision_stream.backends.base.BackendSession`; records its input."""

    def __init__(self, name: str, model: str, step: FakeOpen, settings: SessionSettings, event_queue: int) -> None:
        self.name = name
        self.model = model
        self.step = step
        self._core = SessionCore(label=f"fake {name} session", session_id=settings.session_id,
                                 event_queue=event_queue)
        self.frames: list[SampledFrame] = []
        self.audio: list[AudioChunk] = []
        self.prompts: list[tuple[str, str, float | None]] = []  # (text, reason, media time)
        self.tool_results: list[tuple[str, str, dict[str, object]]] = []
        self.carried: list[tuple[float | None, str]] = []
        self.audio_ended = False
        self._turns: asyncio.Queue[tuple[int, str, str, float | None]] = asyncio.Queue()
        self._worker = asyncio.create_task(self._answer(), name=f"fake-{name}-turns")
        self._timer: asyncio.Task[Any] | None = None
        if step.fail_after is not None:
            self._timer = asyncio.create_task(self._fail_later(step.fail_after), name=f"fake-{name}-drop")

    @property
    def failure(self) -> BackendError | None:
        return self._core.failure

    @property
    def closed(self) -> bool:
        return self._core.closed

    def counters(self) -> BackendCounters:
        return BackendCounters(frames_sent=len(self.frames), audio_chunks_sent=len(self.audio),
                               prompts_sent=len(self.prompts))

    def _raise(self) -> None:
        self._core.record_failure(self.step.failure)
        self._core.check_usable()  # raises a copy of the failure

    async def send_frame(self, frame: SampledFrame) -> None:
        self._core.check_usable()
        if self.step.raise_on_frame == len(self.frames) + 1:
            self._raise()
        self.frames.append(frame)

    async def send_audio(self, chunk: AudioChunk) -> None:
        self._core.check_usable()
        self.audio.append(chunk)

    async def end_audio(self) -> None:
        self._core.check_usable()
        self.audio_ended = True

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        self._core.check_usable()
        self.tool_results.append((call_id, name, response))

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        self._core.check_usable()
        if self.step.raise_on_prompt == len(self.prompts) + 1:
            self._raise()
        self.prompts.append((text, reason, media_time))
        if not self.step.stall:
            self._turns.put_nowait((len(self.prompts), text, reason, media_time))

    def carry_over(self, commentary: Sequence[tuple[float | None, str]]) -> None:
        self.carried.extend(commentary)

    def events(self) -> AsyncIterator[BackendEvent]:
        return aiter(self._core.events)

    async def _answer(self) -> None:
        async with self._core.guard(f"fake {self.name} turns", end_events=False):
            while True:
                turn, text, reason, media_time = await self._turns.get()
                if self.step.answer_delay:
                    await asyncio.sleep(self.step.answer_delay)
                if self.step.fail_on_answer == turn:
                    raise self.step.failure.clone()
                body = self.step.reply(turn, text, reason)
                await self._core.events.put(
                    Commentary(body, final=True, turn_id=f"{self.name}-{turn}", backend=self.name), media_time)
                self._turns.task_done()
        self._core.events.end()  # reached only after a failure: the session ends

    async def _fail_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._core.fail(self.step.failure)
        self._core.events.end()
        self._worker.cancel()

    async def close(self, grace: float = 5.0) -> None:
        """Let the queued turns finish (within ``grace`` s), then end ``events()``. Idempotent."""
        if not self._core.begin_close():
            return
        if self._timer is not None:
            self._timer.cancel()
        if not self._worker.done():  # the running turn and those queued finish first (or the session fails)
            waiter = asyncio.ensure_future(self._turns.join())
            await asyncio.wait([waiter, self._worker], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        await self._core.close_worker(self._worker, 0)
        self._core.events.end()
