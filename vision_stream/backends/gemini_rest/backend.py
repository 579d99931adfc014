"""The REST backend: opens :class:`RestSession` s and answers one-shot snapshot requests.

One instance per API key and base URL. The rate limiter (and any quota hold)
is shared by all its sessions, since Google's quotas are per project. The
model is ``RestSettings.model`` (``--snapshot-model``); a session's
``SessionSettings.model`` names the *live* model and is ignored here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ...config import SessionSettings
from ...errors import BackendError, ServiceError
from ..prompts import SNAPSHOT_PROMPT, system_instruction
from .client import RestClient
from .limiter import RateLimiter
from .messages import ImagePart, Reply, build_request
from .session import NAME, RestSession
from .settings import RestSettings

# Errors after which the backend refuses new sessions: retrying cannot fix them.
DISABLING_CODES = frozenset({"api_key_invalid", "permission_denied", "model_not_found"})
# Seconds a successful reachability check stands for: sessions opened meanwhile skip it.
REACHABLE_FOR = 30.0


class GeminiRestBackend:
    """Opens :class:`RestSession` s (see module docstring).

    After a permanent failure (bad key, forbidden, unknown model) or while the
    daily quota is exhausted, ``open()`` refuses at once with that error:
    probing it costs no request.
    """

    name = NAME

    def __init__(self, settings: RestSettings) -> None:
        self.settings = settings
        self.limiter = RateLimiter(settings.requests_per_minute, burst=settings.burst)
        self.disabled: ServiceError | None = None
        self._reached_at: float | None = None  # monotonic: the host last answered a reachability check

    def __repr__(self) -> str:
        return f"GeminiRestBackend({self.settings!r})"

    def client(self) -> RestClient:
        """A new client sharing this backend's rate limiter."""
        return RestClient.for_settings(self.settings, self.limiter)

    def note_failure(self, exc: BackendError) -> None:
        """A session failed: remember failures no retry can fix."""
        if isinstance(exc, ServiceError) and exc.code in DISABLING_CODES:
            self.disabled = exc

    def check_available(self) -> None:
        """Raise the reason this backend cannot serve now (permanent failure, daily quota, long hold)."""
        if self.disabled is not None:
            raise self.disabled.clone()
        if self.limiter.day_exhausted:
            raise ServiceError(f"Gemini REST daily quota is exhausted ({self.limiter.day_reason})",
                               http_status=429, retryable=False, code="quota_per_day")
        wait = self.limiter.blocked_for()
        if wait > self.settings.retry.max_retry_wait:
            raise ServiceError(f"Gemini REST is rate limited for {wait:.0f} more s ({self.limiter.hold_reason})",
                               http_status=429, retryable=True, code="quota", retry_after=wait)

    async def check_reachable(self) -> None:
        """Raise a retryable TransportError unless the host answers within ``timeouts.connect``.

        Opening is the failover chain's probe: without this a session on an
        unreachable Google opened fine and failed only after its first
        request's retries (~11 s), by when the chain had little left to show
        the next link. Checked at most every ``REACHABLE_FOR`` seconds.
        """
        now = time.monotonic()
        if self._reached_at is not None and now - self._reached_at < REACHABLE_FOR:
            return
        client = self.client()
        try:
            await client.reach(self.settings.timeouts.connect)
        finally:
            await client.aclose()
        self._reached_at = time.monotonic()

    async def open(self, settings: SessionSettings) -> RestSession:
        self.check_available()
        await self.check_reachable()
        return RestSession(self.settings, settings, client_factory=self.client, on_failure=self.note_failure)

    async def analyze(self, jpegs: Sequence[bytes], prompt: str = "", *, model: str = "",
                      session: SessionSettings | None = None) -> Reply:
        """One request about ``jpegs`` (the snapshot RPC): the reply, or ServiceError/TransportError.

        A blocked answer is returned (``reply.blocked``); the caller decides how to show it.
        """
        self.check_available()
        body = build_request(
            [ImagePart(j) for j in jpegs], prompt.strip() or SNAPSHOT_PROMPT,
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
