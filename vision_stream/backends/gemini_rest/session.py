"""One stream analysed by REST snapshots: ``generateContent`` / ``streamGenerateContent?alt=sse``.

Same :class:`~vision_stream.backends.base.BackendSession` contract as live and
offline. Frames are only *kept* on arrival: the JPEG and a small thumbnail
(computed off the event loop), never the decoded picture, for the newest
``candidate_frames``; older ones fall out unseen (counted as dropped). Each
pipeline prompt (cadence, scene, client, final) becomes one request carrying
the most informative recent frames (``snapshot_policy.pick_frames``, up to K
within the token budget) and a rolling summary of recent commentary, answered
as ``commentary`` events: partial text (``final=False``, the text so far, like
the live backend) while the SSE stream runs, then the whole answer (``final=True``).

Prompts never queue without bound: one request runs at a time and one prompt
waits (a newer prompt replaces it unless it ranks lower, ``prompts.replaces``;
replaced prompts are counted as coalesced).

Lossless (``SessionSettings.lossless``: ``--fast``): a pipeline prompt takes
its candidate frames when it is asked, i.e. the frames sent before it on
media time (at real time the request starts at once, so it is the same
choice), and waits while another prompt waits instead of replacing it; the
feed, and through it the reader, wait with it. So a ``--fast`` replay asks the
same questions about the same frames as a real-time one, only sooner.

Failure (see ``client``): transient errors are retried inside the request; a
permanent one (bad key, forbidden, unknown/Live-only model), the daily quota,
or a request whose retries ran out ends the session: an ``error`` event, then
``events()`` ends and ``send_*`` raise the failure (a copy, verdict intact), so
the failover chain moves on. A safety block is an ``error`` event (code
``blocked``, retryable) and the session goes on. Audio is not sent on this
path (counted as ignored).

The session knows nothing of its backend: it gets a ``client_factory`` (the
backend's shared rate limiter inside) and an ``on_failure`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ...conditions.model import Condition
from ...conditions.rest import parse_answer, response_schema
from ...config import SessionSettings
from ...errors import BackendError
from ...events import BackendEvent, Commentary, ErrorEvent, Payload
from ...media.types import AudioChunk, SampledFrame
from ...pricing import estimate_cost
from ...usage import Usage
from ..base import BackendCounters
from ..gemini_api import bare_model_id
from ..prompts import prompt_text, replaces, system_instruction
from ..session_core import SessionCore
from .client import RestClient
from .messages import Chunk, ImagePart, build_request
from .settings import RestSettings
from .snapshot_policy import RollingSummary, pick_frames, thumbnail

NAME = "rest"
# A lossless prompt waiting for the worker re-checks the session's failure this often.
_LOSSLESS_RECHECK = 0.25


def compose_prompt(question: str, times: Sequence[float | None], summary: str) -> str:
    """The text part: the question, which times the pictures show, what was said before."""
    shown = [f"{t:.1f} s" for t in times if t is not None]
    lines = [question]
    if shown:
        noun = "picture above is a frame" if len(times) == 1 else f"{len(times)} pictures above are frames"
        lines.append(f"The {noun} of the stream at {', '.join(shown)}.")
    if summary:
        lines.append("Your recent comments, oldest first (continue from them; do not repeat them):")
        lines.append(summary)
    return "\n".join(lines)


@dataclass(slots=True)
class _Prompt:
    text: str
    reason: str
    media_time: float | None
    frames: list[_Kept] | None = None  # lossless: chosen when asked (None: at the turn's start)


@dataclass(frozen=True, slots=True)
class _Kept:
    """A candidate frame: what a request sends (JPEG, time) and what picking compares (thumbnail)."""

    jpeg: bytes
    media_time: float
    thumb: np.ndarray
    frame_id: int = 0  # the evidence ring's id (pipeline/session.py): what events name


class RestSession:
    """One stream analysed by REST snapshots (see module docstring)."""

    name = NAME

    def __init__(
        self,
        settings: RestSettings,
        session: SessionSettings,
        *,
        client_factory: Callable[[], RestClient],
        on_failure: Callable[[BackendError], None] | None = None,
    ) -> None:
        self._session = session
        self.settings = settings
        self.model = bare_model_id(settings.model)
        self._client = client_factory()
        self._core = SessionCore(label="REST session", session_id=session.session_id,
                                 event_queue=settings.event_queue, on_failure=on_failure)
        self._frames: deque[_Kept] = deque(maxlen=settings.candidate_frames)
        self._last_sent: list[_Kept] = []  # reused when no new frame arrived since
        self._reference: np.ndarray | None = None  # thumbnail of the newest frame analysed
        self._summary = RollingSummary(settings.summary)
        self._pending: _Prompt | None = None
        self._wakeup = asyncio.Event()
        self._taken = asyncio.Event()  # the worker took the waiting prompt (lossless prompts wait for it)
        self._lossless = session.lossless
        self._turns = 0
        self._latest_time: float | None = None
        self.prompts_coalesced = 0
        self.audio_chunks_ignored = 0
        self.frames_sent = 0
        self.frames_dropped = 0  # candidates pushed out of the window before any request saw them
        self.prompt_tokens = 0
        self.response_tokens = 0
        self.usage = Usage()
        self.turns_answered = 0
        self._held = False  # a 429 was reported and no request has succeeded since
        self._worker = asyncio.create_task(self._work(), name=f"rest-session-{session.session_id}")

    @property
    def failure(self) -> BackendError | None:
        """Why the session failed (None while it works), verdict intact: the failover chain
        reads it when ``events()`` ended, for the retry delay and the error code."""
        return self._core.failure

    # ---- BackendSession input ------------------------------------------------------------

    async def send_frame(self, frame: SampledFrame) -> None:
        """Keep the frame as a candidate for the next request (no network; newest win)."""
        self._core.check_usable()
        # The thumbnail is all picking needs: the decoded picture is not kept (OpenCV releases the GIL).
        thumb = await asyncio.to_thread(thumbnail, frame.pixels)
        if len(self._frames) == self._frames.maxlen:
            self.frames_dropped += 1  # deque drops the oldest candidate
        self._frames.append(_Kept(frame.jpeg, frame.media_time, thumb, frame.frame_id))
        self._latest_time = frame.media_time

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Ignored on this path (snapshots are pictures); counted."""
        self._core.check_usable()
        self.audio_chunks_ignored += 1

    async def end_audio(self) -> None:
        self._core.check_usable()

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        """Ignored: this path declares no functions."""
        self._core.check_usable()

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Ask for commentary; one prompt waits at most (see module docstring)."""
        self._core.check_usable()
        if self._lossless and reason != "client":
            await self._prompt_lossless(_Prompt(text, reason, media_time))
            return
        pending = self._pending
        if pending is not None:
            self.prompts_coalesced += 1
            if not replaces(reason, pending.reason):
                return
        self._pending = _Prompt(text, reason, media_time)
        self._wakeup.set()

    async def _prompt_lossless(self, prompt: _Prompt) -> None:
        """Wait until no prompt waits (the worker took it: its request runs), then queue
        ``prompt`` with the frames sent so far; never coalesced."""
        while self._pending is not None:
            self._taken.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_LOSSLESS_RECHECK):
                    await self._taken.wait()
            self._core.check_usable()  # a failed worker takes nothing more
        prompt.frames = self._choose()
        self._pending = prompt
        self._wakeup.set()

    def set_conditions(self, conditions: Sequence[Condition]) -> None:
        """The watch conditions changed: the next request judges these (a running one the old)."""
        self._session = replace(self._session, conditions=tuple(conditions))

    def carry_over(self, commentary: Sequence[tuple[float | None, str]]) -> None:
        """Seed the rolling summary with earlier commentary (the failover chain calls this)."""
        for media_time, text in commentary:
            self._summary.add(text, media_time)

    # ---- output --------------------------------------------------------------------------

    def events(self) -> AsyncIterator[BackendEvent]:
        """Events as they come; ends after ``close()`` drained, or after a final error event."""
        return aiter(self._core.events)

    async def _emit(self, payload: Payload, media_time: float | None) -> None:
        await self._core.events.put(payload, media_time)

    # ---- the worker ----------------------------------------------------------------------

    async def _work(self) -> None:
        async with self._core.guard("REST session worker", media_time=lambda: self._latest_time):
            while True:
                if self._pending is None:
                    if self._core.closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                prompt, self._pending = self._pending, None
                self._taken.set()
                await self._turn(prompt)

    def _choose(self) -> list[_Kept]:
        fresh = list(self._frames)
        self._frames.clear()
        if not fresh:
            return list(self._last_sent)
        picked = pick_frames([k.thumb for k in fresh], self._reference, self.settings.frames_per_request)
        chosen = [fresh[i] for i in picked]
        self._reference = chosen[-1].thumb
        self._last_sent = chosen
        self.frames_sent += len(chosen)
        return chosen

    async def _turn(self, prompt: _Prompt) -> None:
        self._turns += 1
        turn_id = f"{NAME}-{self._turns}"
        chosen = prompt.frames if prompt.frames is not None else self._choose()
        when = prompt.media_time if prompt.media_time is not None else self._latest_time
        question = prompt_text(prompt.text, prompt.reason)
        conditions = self._session.conditions  # this request's set (SetConditions may change it meanwhile)
        frame_ids = tuple(k.frame_id for k in chosen if k.frame_id)
        body = build_request(
            [ImagePart(k.jpeg, k.media_time) for k in chosen],
            compose_prompt(question, [k.media_time for k in chosen], self._summary.render()),
            system_instruction=system_instruction(self._session, "stream"),
            max_output_tokens=self.settings.max_output_tokens,
            media_resolution=self._session.media_resolution or self.settings.media_resolution,
            temperature=self.settings.temperature,
            response_schema=response_schema(conditions) if conditions else None,
        )
        so_far: list[str] = []

        async def on_chunk(chunk: Chunk) -> None:
            if chunk.text and not chunk.blocked and not conditions:  # JSON partials are no commentary
                so_far.append(chunk.text)
                text = "".join(so_far).strip()
                if text:
                    await self._emit(Commentary(text, final=False, turn_id=turn_id, backend=NAME), when)

        async def on_rate_limited(failure: BackendError, delay: float) -> None:
            await self._report_hold(delay, when)

        # A retried attempt starts its text over (same turn id, so its partials replace the old ones).
        reply = await self._client.generate(self.model, body, stream=self.settings.stream,
                                            on_chunk=on_chunk if self.settings.stream else None,
                                            on_retry=so_far.clear, on_rate_limited=on_rate_limited)
        self._held = False
        self.prompt_tokens += reply.prompt_tokens
        self.response_tokens += reply.response_tokens
        self.usage += reply.usage
        if reply.blocked:
            await self._emit(ErrorEvent("blocked", reply.block_message(), retryable=True), when)
            return
        text = reply.text.strip()
        if conditions:
            text = await self._structured(text, conditions, frame_ids, when)
        if text:
            self.turns_answered += 1
            self._summary.add(text, when)
            await self._emit(Commentary(text, final=True, turn_id=turn_id, backend=NAME, frame_ids=frame_ids), when)

    async def _structured(self, text: str, conditions: Sequence[Condition], frame_ids: tuple[int, ...],
                          when: float | None) -> str:
        """A structured answer: its verdicts go to the pipeline's engine; returns the commentary.
        Not the JSON asked for: one retryable ``bad_response`` error (the next request is a new try)."""
        try:
            answer = parse_answer(text, conditions, NAME, frame_ids)
        except ValueError as exc:
            await self._emit(ErrorEvent("bad_response", f"Gemini REST structured output unusable: {exc}",
                                        retryable=True), when)
            return ""
        for verdict in answer.verdicts:
            await self._emit(verdict, when)
        return answer.commentary

    async def _report_hold(self, delay: float, when: float | None) -> None:
        """A 429 holds the session: one retryable ``rate_limited`` error event per hold (the
        first 429 until a request succeeds, not one per retry), with the server's delay, the
        moment it arrives: otherwise the user sees only commentary arriving late."""
        if self._held:
            return
        self._held = True
        message = (f"Gemini REST is rate limited (HTTP 429): the server asks to wait {delay:.1f} s; "
                   "analysis resumes after it")
        await self._emit(ErrorEvent("rate_limited", message, retryable=True), when)

    # ---- close ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Answer the waiting prompt (bounded by ``timeouts.close``), then end ``events()``. Idempotent."""
        if not self._core.begin_close():
            return
        self._wakeup.set()
        try:
            # Also when close() itself is cancelled: the worker and the HTTP client never outlive us.
            await self._core.close_worker(self._worker, self.settings.timeouts.close)
        finally:
            await self._client.aclose()
            self._core.events.end()

    def counters(self) -> BackendCounters:
        """What the session counted (see ``backends.base``)."""
        stats = self._client.stats
        return BackendCounters(
            prompt_tokens=self.prompt_tokens, response_tokens=self.response_tokens,
            usage=self.usage, estimated_cost_usd=estimate_cost(self.usage, self.model),
            requests=stats.requests, retries=stats.retries, rate_limited=stats.rate_limited,
            frames_sent=self.frames_sent, frames_dropped=self.frames_dropped,
            prompts_coalesced=self.prompts_coalesced, audio_chunks_ignored=self.audio_chunks_ignored,
        )
