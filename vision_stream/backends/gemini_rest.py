"""Snapshot analysis of a stream over REST: ``generateContent`` / ``streamGenerateContent?alt=sse``.

Same :class:`~vision_stream.backends.base.BackendSession` interface as live and
offline. Frames are only *kept* on arrival (newest ``candidate_frames``); each
pipeline prompt (cadence, scene, client, final) becomes one request carrying
the most informative recent frames (``rest_policy.pick_frames``, up to K within
the token budget) and a rolling summary of recent commentary, answered as
``commentary`` events: partial text (``final=False``, the text so far, like the
live backend) while the SSE stream runs, then the whole answer (``final=True``).

Prompts never queue without bound: one request runs at a time and one prompt
waits (a newer prompt replaces it unless it ranks lower: final > client >
scene > cadence; replaced prompts are counted as coalesced).

Failure (see ``rest_client``): transient errors are retried inside the
request; a permanent one (bad key, forbidden, unknown/Live-only model), the
daily quota, or a request whose retries ran out ends the session: an
``error`` event, then ``events()`` ends and ``send_*`` raise
:class:`~vision_stream.errors.BackendError`, so the failover chain moves on.
A safety block is an ``error`` event (code ``blocked``, retryable) and the
session goes on. Audio is not sent on this path (counted as ignored).

The model is ``RestSettings.model`` (``--snapshot-model``); the session's
``SessionSettings.model`` names the *live* model and is ignored here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import numpy as np

from ..config import SessionSettings
from ..errors import BackendError, ServiceError, SessionError, UsageError
from ..events import BackendEvent, Commentary, ErrorEvent, Payload
from ..media.types import AudioChunk, SampledFrame
from ..net import is_loopback_url
from ..redact import PLACEHOLDER
from .event_stream import EventStream
from .gemini_api import API_VERSION, DEFAULT_SNAPSHOT_MODEL, GEMINI_REST_BASE, MEDIA_RESOLUTIONS, bare_model_id
from .prompts import SNAPSHOT_PROMPT, prompt_text, replaces, system_instruction
from .rest_client import RestClient, RestRetryPolicy
from .rest_limiter import DEFAULT_BURST, DEFAULT_PER_MINUTE, RateLimiter
from .rest_messages import Chunk, ImagePart, Reply, build_request
from .rest_policy import RollingSummary, SummaryLimits, frames_within_budget, pick_frames, thumbnail

log = logging.getLogger("vision_stream.backends.gemini_rest")

NAME = "rest"
# Errors after which the backend refuses new sessions: retrying cannot fix them.
DISABLING_CODES = frozenset({"api_key_invalid", "permission_denied", "model_not_found"})


@dataclass(frozen=True, kw_only=True, slots=True)
class RestTimeouts:
    """Seconds. ``read`` is the longest silence inside a response (a stalled stream);
    ``request`` bounds one whole attempt; ``close`` bounds ``close()`` flushing."""

    connect: float = 10.0
    read: float = 30.0
    write: float = 30.0
    request: float = 120.0
    close: float = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "request", "close"):
            if getattr(self, name) <= 0:
                raise UsageError(f"REST timeout {name} must be > 0 seconds")


@dataclass(frozen=True, kw_only=True, slots=True)
class RestSettings:
    """Everything the REST backend needs beyond the per-session settings.

    base_url: ``https://host[:port]`` (None: Google's); ``/v1beta/models/...`` is appended.
    api_key: sent in ``x-goog-api-key`` only; never printed.
    model: REST model id (``--snapshot-model``); a Live-only name answers 404.
    stream: use ``streamGenerateContent?alt=sse`` (partial commentary) instead of ``generateContent``.
    media_resolution: per-image token cost (LOW 64, MEDIUM 256).
    max_frames / image_token_budget: K frames per request, at most the budget in image tokens.
    candidate_frames: recent frames kept to choose from (the newest win).
    max_output_tokens: answer length bound.
    requests_per_minute / burst: client-side rate limit, shared by every session of the backend.
    """

    base_url: str | None = None
    api_version: str = API_VERSION
    api_key: str = field(default="", repr=False)
    model: str = DEFAULT_SNAPSHOT_MODEL
    stream: bool = True
    media_resolution: str = "MEDIA_RESOLUTION_MEDIUM"
    max_frames: int = 4
    image_token_budget: int = 1024
    candidate_frames: int = 16
    max_output_tokens: int = 256
    temperature: float | None = None
    requests_per_minute: float = DEFAULT_PER_MINUTE
    burst: int = DEFAULT_BURST
    retry: RestRetryPolicy = field(default_factory=RestRetryPolicy)
    timeouts: RestTimeouts = field(default_factory=RestTimeouts)
    summary: SummaryLimits = field(default_factory=SummaryLimits)
    event_queue: int = 256

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise UsageError("REST model must not be empty (--snapshot-model)")
        if self.media_resolution not in MEDIA_RESOLUTIONS:
            raise UsageError(f"media_resolution must be one of {MEDIA_RESOLUTIONS}")
        if self.base_url is not None and urlsplit(self.base_url).scheme not in ("http", "https"):
            raise UsageError("REST base URL must be http:// or https:// (--rest-url)")
        if self.max_frames < 1 or self.candidate_frames < 1 or self.image_token_budget < 1:
            raise UsageError("max_frames, candidate_frames and image_token_budget must be >= 1")
        if self.max_output_tokens < 1 or self.requests_per_minute <= 0 or self.burst < 1 or self.event_queue < 1:
            raise UsageError("max_output_tokens, requests_per_minute, burst and event_queue must be > 0")

    def __repr__(self) -> str:
        key = PLACEHOLDER if self.api_key else "''"
        return (f"RestSettings(base_url={self.base!r}, model={self.model!r}, api_key={key}, stream={self.stream}, "
                f"media_resolution={self.media_resolution!r}, max_frames={self.max_frames}, "
                f"requests_per_minute={self.requests_per_minute}, retry={self.retry!r})")

    @property
    def base(self) -> str:
        return (self.base_url or GEMINI_REST_BASE).rstrip("/")

    @property
    def is_loopback(self) -> bool:
        return is_loopback_url(self.base)

    @property
    def frames_per_request(self) -> int:
        return frames_within_budget(self.max_frames, self.image_token_budget, self.media_resolution)

    def http_timeout(self) -> httpx.Timeout:
        t = self.timeouts
        return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.connect)


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


@dataclass(slots=True)
class _Kept:
    frame: SampledFrame
    thumb: np.ndarray | None = None


class RestSession:
    """One stream analysed by REST snapshots (see module docstring)."""

    name = NAME

    def __init__(self, backend: GeminiRestBackend, session: SessionSettings) -> None:
        self._backend = backend
        self._session = session
        settings = backend.settings
        self.settings = settings
        self.model = bare_model_id(settings.model)
        self._client = backend.client()
        self._frames: deque[_Kept] = deque(maxlen=settings.candidate_frames)
        self._last_sent: list[_Kept] = []  # reused when no new frame arrived since
        self._reference: np.ndarray | None = None  # thumbnail of the newest frame analysed
        self._summary = RollingSummary(settings.summary)
        self._pending: _Prompt | None = None
        self._wakeup = asyncio.Event()
        self._events = EventStream(settings.event_queue)
        self._failure: BackendError | None = None
        self._closing = False
        self._closed = False
        self._turns = 0
        self._latest_time: float | None = None
        self.prompts_coalesced = 0
        self.audio_chunks_ignored = 0
        self.prompt_tokens = 0
        self.response_tokens = 0
        self.turns_answered = 0
        self._worker = asyncio.create_task(self._work(), name=f"rest-session-{session.session_id}")

    @property
    def failure(self) -> BackendError | None:
        """Why the session failed (None while it works). The failover chain reads it when ``events()``
        ended, for the server's retry delay (``ServiceError.retry_after``) and the error code."""
        return self._failure

    # ---- BackendSession input ------------------------------------------------------------

    def _check_usable(self) -> None:
        failure = self._failure
        if failure is not None:
            if isinstance(failure, ServiceError):
                raise ServiceError(failure.message, status=failure.status, retryable=failure.retryable,
                                   code=failure.code, retry_after=failure.retry_after)
            raise BackendError(failure.message, retryable=failure.retryable, code=failure.code)
        if self._closing:
            raise SessionError("REST session is closing")

    async def send_frame(self, frame: SampledFrame) -> None:
        """Keep the frame as a candidate for the next request (no network; newest win)."""
        self._check_usable()
        self._frames.append(_Kept(frame))
        self._latest_time = frame.media_time

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Ignored on this path (snapshots are pictures); counted."""
        self._check_usable()
        self.audio_chunks_ignored += 1

    async def end_audio(self) -> None:
        self._check_usable()

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        """Ignored: this path declares no functions."""
        self._check_usable()

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Ask for commentary; one prompt waits at most (see module docstring)."""
        self._check_usable()
        offered = _Prompt(text, reason, media_time)
        pending = self._pending
        if pending is not None:
            self.prompts_coalesced += 1
            if not replaces(reason, pending.reason):
                return
        self._pending = offered
        self._wakeup.set()

    def carry_over(self, commentary: Sequence[tuple[float | None, str]]) -> None:
        """Seed the rolling summary with earlier commentary (the failover chain calls this)."""
        for media_time, text in commentary:
            self._summary.add(text, media_time)

    # ---- output --------------------------------------------------------------------------

    def events(self) -> AsyncIterator[BackendEvent]:
        """Events as they come; ends after ``close()`` drained, or after a final error event."""
        return aiter(self._events)

    async def _emit(self, payload: Payload, media_time: float | None) -> None:
        await self._events.put(payload, media_time)

    def _end_events(self) -> None:
        self._events.end()

    # ---- the worker ----------------------------------------------------------------------

    async def _work(self) -> None:
        try:
            while True:
                if self._pending is None:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                prompt, self._pending = self._pending, None
                await self._turn(prompt)
        except BackendError as exc:
            self._failure = exc
            self._backend.note_failure(exc)
            log.warning("REST session %s failed: %s", self._session.session_id, exc.message)
            await self._emit(ErrorEvent(exc.code, exc.message, retryable=exc.retryable), self._latest_time)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the pipeline waiting forever
            log.exception("REST session worker crashed")
            self._failure = BackendError(f"REST session failed: {type(exc).__name__}")
            await self._emit(ErrorEvent("internal", self._failure.message, retryable=False), self._latest_time)
        finally:
            self._end_events()

    async def _choose(self) -> list[_Kept]:
        fresh = list(self._frames)
        self._frames.clear()
        if not fresh:
            return list(self._last_sent)
        missing = [k for k in fresh if k.thumb is None]
        if missing:
            thumbs = await asyncio.to_thread(lambda: [thumbnail(k.frame.pixels) for k in missing])
            for kept, thumb in zip(missing, thumbs, strict=True):
                kept.thumb = thumb
        picked = pick_frames([k.thumb for k in fresh if k.thumb is not None], self._reference,
                             self.settings.frames_per_request)
        chosen = [fresh[i] for i in picked]
        self._reference = chosen[-1].thumb
        self._last_sent = chosen
        return chosen

    async def _turn(self, prompt: _Prompt) -> None:
        self._turns += 1
        turn_id = f"{NAME}-{self._turns}"
        chosen = await self._choose()
        question = prompt_text(prompt.text, prompt.reason)
        when = prompt.media_time if prompt.media_time is not None else self._latest_time
        body = build_request(
            [ImagePart(k.frame.jpeg, k.frame.media_time) for k in chosen],
            compose_prompt(question, [k.frame.media_time for k in chosen], self._summary.render()),
            system_instruction=system_instruction(self._session),
            max_output_tokens=self.settings.max_output_tokens,
            media_resolution=self.settings.media_resolution,
            temperature=self.settings.temperature,
        )
        so_far: list[str] = []

        async def on_chunk(chunk: Chunk) -> None:
            if chunk.text and not chunk.blocked:
                so_far.append(chunk.text)
                text = "".join(so_far).strip()
                if text:
                    await self._emit(Commentary(text, final=False, turn_id=turn_id, backend=NAME), when)

        # A retried attempt starts its text over (same turn id, so its partials replace the old ones).
        reply = await self._client.generate(self.model, body, stream=self.settings.stream,
                                            on_chunk=on_chunk if self.settings.stream else None,
                                            on_retry=so_far.clear)
        self._record(reply)
        if reply.blocked:
            await self._emit(ErrorEvent("blocked", reply.block_message(), retryable=True), when)
            return
        text = reply.text.strip()
        if text:
            self.turns_answered += 1
            self._summary.add(text, when)
            await self._emit(Commentary(text, final=True, turn_id=turn_id, backend=NAME), when)

    def _record(self, reply: Reply) -> None:
        self.prompt_tokens += reply.prompt_tokens
        self.response_tokens += reply.response_tokens

    # ---- close ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Answer the waiting prompt (bounded by ``timeouts.close``), then end ``events()``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._wakeup.set()
        worker = self._worker
        try:
            if not worker.done():
                async with asyncio.timeout(self.settings.timeouts.close):
                    await asyncio.shield(worker)
        except TimeoutError:
            log.info("REST session %s: last request did not finish in time", self._session.session_id)
        finally:
            # Also when close() itself is cancelled: the worker and the HTTP client never outlive us.
            if not worker.done():
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await self._client.aclose()
            self._end_events()

    def counters(self) -> Mapping[str, int]:
        """Counts for Stats events (see ``backends.base``)."""
        stats = self._client.stats
        return {
            "prompt_tokens": self.prompt_tokens,
            "response_tokens": self.response_tokens,
            "requests": stats.requests,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
            "prompts_coalesced": self.prompts_coalesced,
            "audio_chunks_ignored": self.audio_chunks_ignored,
        }


class GeminiRestBackend:
    """Opens :class:`RestSession` s; one instance per API key and base URL.

    The rate limiter (and any quota hold) is shared by all its sessions, since
    Google's quotas are per project. After a permanent failure (bad key,
    forbidden, unknown model) or while the daily quota is exhausted, ``open()``
    refuses at once with that error: probing it costs no request.
    """

    name = NAME

    def __init__(self, settings: RestSettings) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.requests_per_minute, burst=settings.burst)
        self.disabled: ServiceError | None = None

    def __repr__(self) -> str:
        return f"GeminiRestBackend({self.settings!r})"

    def client(self) -> RestClient:
        s = self.settings
        return RestClient(
            base_url=s.base, api_version=s.api_version, api_key=s.api_key, limiter=self.limiter,
            retry=s.retry, timeout=s.http_timeout(), request_timeout=s.timeouts.request, loopback=s.is_loopback,
        )

    def note_failure(self, exc: BackendError) -> None:
        """A session failed: remember failures no retry can fix."""
        if isinstance(exc, ServiceError) and exc.code in DISABLING_CODES:
            self.disabled = exc

    def check_available(self) -> None:
        """Raise the reason this backend cannot serve now (permanent failure, daily quota, long hold)."""
        if self.disabled is not None:
            d = self.disabled
            raise ServiceError(d.message, status=d.status, retryable=False, code=d.code)
        if self.limiter.day_exhausted:
            raise ServiceError(f"Gemini REST daily quota is exhausted ({self.limiter.day_reason})",
                               status=429, retryable=False, code="quota_per_day")
        wait = self.limiter.blocked_for()
        if wait > self.settings.retry.max_retry_wait:
            raise ServiceError(f"Gemini REST is rate limited for {wait:.0f} more s ({self.limiter.hold_reason})",
                               status=429, retryable=True, code="quota", retry_after=wait)

    async def open(self, settings: SessionSettings) -> RestSession:
        self.check_available()
        return RestSession(self, settings)

    async def analyze(self, jpegs: Sequence[bytes], prompt: str = "", *, model: str = "",
                      session: SessionSettings | None = None) -> Reply:
        """One request about ``jpegs`` (the snapshot RPC): the reply, or ServiceError/TransportError.

        A blocked answer is returned (``reply.blocked``); the caller decides how to show it.
        """
        self.check_available()
        question = prompt.strip() or SNAPSHOT_PROMPT
        body = build_request(
            [ImagePart(j) for j in jpegs], question,
            system_instruction=system_instruction(session, "snapshot"),
            max_output_tokens=self.settings.max_output_tokens, media_resolution=self.settings.media_resolution,
            temperature=self.settings.temperature,
        )
        client = self.client()
        chosen = model or self.settings.model
        try:
            return await client.generate(chosen, body, stream=False)
        except BackendError as exc:
            if chosen == self.settings.model or not (isinstance(exc, ServiceError) and exc.status == 404):
                self.note_failure(exc)  # a per-request model that does not exist says nothing of ours
            raise
        finally:
            await client.aclose()
