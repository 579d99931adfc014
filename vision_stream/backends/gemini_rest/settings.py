"""Settings of the REST backend: typed, keyword-only, validated, the key redacted.

The environment is read by the CLI, never here. ``base_url`` is a setting so
tests and offline users point the backend at the loopback emulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from ...errors import UsageError
from ...net import is_loopback_url
from ...redact import PLACEHOLDER
from ...retry import RetryPolicy
from ..gemini_api import API_VERSION, DEFAULT_SNAPSHOT_MODEL, GEMINI_REST_BASE, MEDIA_RESOLUTIONS, check_api_version
from .limiter import DEFAULT_BURST, DEFAULT_PER_MINUTE
from .snapshot_policy import SummaryLimits, frames_within_budget


@dataclass(frozen=True, kw_only=True, slots=True)
class RestRetryPolicy:
    """Retries of one request. Seconds.

    max_attempts: attempts per request (first try included).
    base_backoff / max_backoff / jitter: the wait after the n-th failed attempt,
        for 408/5xx/network errors and 429s without a retry delay: the one
        backoff of ``vision_stream.retry`` (``min(max, base * 2**(n-1))``,
        +/- ``jitter`` as a fraction), never below a server's ``Retry-After``.
    max_retry_wait: the longest single wait we accept inside a request; a
        server asking for more fails the request (the chain goes offline).
    """

    max_attempts: int = 4
    base_backoff: float = 1.0
    max_backoff: float = 30.0
    jitter: float = 0.5
    max_retry_wait: float = 60.0
    backoff: RetryPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retry_wait < 0:
            raise UsageError(f"REST retry max_retry_wait must be >= 0 seconds, got {self.max_retry_wait}")
        # RetryPolicy validates the rest (UsageError naming the field).
        backoff = RetryPolicy(initial_delay=self.base_backoff, max_delay=self.max_backoff, multiplier=2.0,
                              jitter=self.jitter, max_attempts=self.max_attempts)
        object.__setattr__(self, "backoff", backoff)


@dataclass(frozen=True, kw_only=True, slots=True)
class RestTimeouts:
    """Seconds. ``connect`` bounds TCP + TLS, and the reachability check of ``open()``
    (an unreachable Google fails a session's start within it, so the failover chain
    moves on at once); ``read`` is the longest silence inside a response (a stalled
    stream); ``request`` bounds one whole attempt; ``close`` bounds ``close()`` flushing."""

    connect: float = 3.0
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

    base_url: ``https://host[:port]`` (None: Google's); ``/{api_version}/models/...`` is appended.
    api_version: "v1" (the official SDK's default), "v1beta" or "v1alpha": the one version
        setting the Live backend and the models list share (``--api-version``).
    api_key: sent in ``x-goog-api-key`` only; never printed.
    model: REST model id (``--snapshot-model``); a Live-only name answers 404.
    stream: use ``streamGenerateContent?alt=sse`` (partial commentary) instead of ``generateContent``.
    media_resolution: per-image token cost (LOW 64, MEDIUM 256).
    max_frames / image_token_budget: K frames per request, at most the budget in image tokens.
    candidate_frames: recent frames kept to choose from (the newest win; older ones are dropped, counted).
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
        check_api_version(self.api_version)
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

    def secrets(self) -> tuple[str, ...]:
        """Every secret these settings hold, for :func:`vision_stream.redact.scrub`."""
        return (self.api_key,) if self.api_key else ()

    def http_timeout(self) -> httpx.Timeout:
        t = self.timeouts
        return httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.connect)
