"""One REST call with the quota behaviour of issue 4: pace, send, classify, honour, back off.

HTTP client: httpx (already a dependency, used by the models listing too): an
asyncio client with connection pooling, per-phase timeouts (a stalled SSE
stream trips the read timeout), streaming responses for SSE, HTTP/1.1 on
loopback, proxies from the environment only for non-loopback hosts.

Retry rules (LIVE_API.md §2; DESIGN.md "Failure model"):

- every attempt first waits for the backend's :class:`RateLimiter` slot and
  any hold a server set;
- 429 per-minute: the server's ``RetryInfo.retryDelay`` (else ``Retry-After``)
  becomes a hold for *every* session of the backend; no extra request before it;
- 429 ``PerDay``: no retry; the limiter refuses until the daily reset;
- 408/5xx and network errors: jittered exponential backoff (also at least any
  ``Retry-After``);
- 400/401/403/404: permanent, raised with the server's message;
- a wait longer than ``max_retry_wait`` is not waited: the error is raised so
  the failover chain can go offline meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...errors import BackendError, ProtocolError, ServiceError, TransportError
from ...net import network_failure
from ...redact import redact_url, scrub
from ...retry import Backoff
from ..gemini_api import api_key_headers, bare_model_id
from .errors import classify_error, parse_retry_after
from .limiter import RateLimiter
from .messages import Chunk, Reply, join_chunks, parse_chunk
from .settings import RestRetryPolicy, RestSettings
from .sse import SSEParser

log = logging.getLogger("vision_stream.backends.gemini_rest")

MAX_ERROR_BODY = 64 * 1024  # bytes of an error response we read


@dataclass(slots=True)
class CallStats:
    """Counts of one client (bounded integers)."""

    requests: int = 0  # HTTP requests sent
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    waited_seconds: float = 0.0  # in the limiter and in backoff


DeltaCallback = Callable[[Chunk], Awaitable[None]]
# Told of a 429 the client is about to wait out: the error (its verdict intact) and the wait, seconds.
RateLimitCallback = Callable[[BackendError, float], Awaitable[None]]


def is_rate_limit(failure: BackendError) -> bool:
    """A per-minute quota refusal (HTTP 429), the kind a hold waits out."""
    return isinstance(failure, ServiceError) and failure.status == 429


class RestClient:
    """Calls ``{base}/{version}/models/{model}:generateContent`` (or the SSE variant) with retries."""

    def __init__(
        self,
        *,
        base_url: str,
        api_version: str,
        api_key: str,
        limiter: RateLimiter,
        retry: RestRetryPolicy,
        timeout: httpx.Timeout,
        request_timeout: float,
        loopback: bool,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.limiter = limiter
        self.retry = retry
        self.request_timeout = request_timeout
        self.stats = CallStats()
        self._secrets = (api_key,) if api_key else ()
        self._rng = rng or random.Random()
        # The key travels in the x-goog-api-key header only, never in a URL (LIVE_API.md §2).
        self._http = httpx.AsyncClient(
            headers=api_key_headers(api_key),
            timeout=timeout,
            trust_env=not loopback,
            follow_redirects=False,
        )

    @classmethod
    def for_settings(cls, settings: RestSettings, limiter: RateLimiter) -> RestClient:
        """A client for ``settings`` pacing its requests with ``limiter`` (shared per backend)."""
        return cls(base_url=settings.base, api_version=settings.api_version, api_key=settings.api_key,
                   limiter=limiter, retry=settings.retry, timeout=settings.http_timeout(),
                   request_timeout=settings.timeouts.request, loopback=settings.is_loopback)

    async def aclose(self) -> None:
        await self._http.aclose()

    def url(self, model: str, *, stream: bool) -> str:
        """The endpoint (no secret in it). ``model`` may carry a ``models/`` prefix."""
        model_id = bare_model_id(model)
        method = "streamGenerateContent" if stream else "generateContent"
        return f"{self.base_url}/{self.api_version}/models/{model_id}:{method}"

    def _scrub(self, text: str) -> str:
        return scrub(text, *self._secrets)

    async def reach(self, within: float) -> None:
        """Raise a retryable :class:`TransportError` unless the host answers HTTP within ``within`` s.

        ``GET /{version}/models?pageSize=1``: any status counts (it is no model
        turn and costs no generate quota). A connect timeout alone would miss a
        host that accepts TCP (the kernel completes the handshake for a
        listening socket's backlog) but never answers, so the whole exchange is
        bounded.
        """
        url = f"{self.base_url}/{self.api_version}/models"
        try:
            async with asyncio.timeout(within):
                await self._http.get(url, params={"pageSize": "1"})
        except TimeoutError:
            raise TransportError(f"Gemini REST unreachable: no answer from {redact_url(self.base_url)} within "
                                 f"{within:g} s", retryable=True) from None
        except httpx.HTTPError as exc:
            where = redact_url(self.base_url)
            plain = network_failure(exc, urlsplit(self.base_url).hostname or "", where)
            raise TransportError(self._scrub(f"Gemini REST unreachable: {plain or f'{type(exc).__name__} at {where}'}"),
                                 retryable=True) from None

    # ---- the retry loop ------------------------------------------------------------------

    async def generate(
        self,
        model: str,
        body: Mapping[str, Any],
        *,
        stream: bool,
        on_chunk: DeltaCallback | None = None,
        on_retry: Callable[[], None] | None = None,
        on_rate_limited: RateLimitCallback | None = None,
    ) -> Reply:
        """Send ``body``; retry per the policy; the whole reply (raises ServiceError/TransportError).

        ``on_chunk`` sees every response chunk as it arrives; ``on_retry`` is called
        before each retried attempt (partial text of the failed one is void);
        ``on_rate_limited`` hears of each 429 the client waits out, as it arrives
        and before the wait (the session turns it into an ``error`` event).
        """
        backoff = Backoff(self.retry.backoff, rng=self._rng)
        while True:
            if backoff.failures and on_retry is not None:
                on_retry()
            self._check_day_quota()
            self.stats.waited_seconds += await self.limiter.acquire()
            try:
                async with asyncio.timeout(self.request_timeout):
                    return await self._once(model, body, stream=stream, on_chunk=on_chunk)
            except TimeoutError:
                failure: BackendError = TransportError(
                    f"Gemini REST request took longer than {self.request_timeout:g} s", retryable=True
                )
            except (ServiceError, TransportError) as exc:
                failure = exc
            delay = self._after_failure(failure, backoff)
            if on_rate_limited is not None and is_rate_limit(failure):
                await on_rate_limited(failure, delay)
            self.stats.retries += 1
            log.info("REST request failed (%s); retry %d in %.2f s", failure.message, backoff.failures, delay)
            await asyncio.sleep(delay)
            self.stats.waited_seconds += delay

    def _check_day_quota(self) -> None:
        if self.limiter.day_exhausted:
            raise ServiceError(
                f"Gemini REST daily quota is exhausted ({self.limiter.day_reason}); not retrying until it resets",
                http_status=429, retryable=False, code="quota_per_day",
            )

    def _after_failure(self, failure: BackendError, backoff: Backoff) -> float:
        """The delay before the next attempt, or raise ``failure`` (its verdict intact) when none is due."""
        if failure.code == "quota_per_day":
            self.limiter.exhaust_day(failure.message[:200])
            raise failure
        if not failure.retryable:
            raise failure
        server_delay = failure.retry_after
        if server_delay is not None:
            # Quota is per project: every session of this backend waits.
            self.limiter.hold(server_delay, failure.message[:200])
        delay = backoff.fail(at_least=server_delay or 0.0)
        if delay is None:
            raise failure  # max_attempts used up
        if isinstance(failure, ServiceError) and failure.status == 429 and server_delay is not None:
            delay = server_delay  # honour RetryInfo.retryDelay exactly
        if delay > self.retry.max_retry_wait:
            raise failure.clone(
                f"{failure.message} (the server asks to wait {delay:.0f} s, more than the "
                f"{self.retry.max_retry_wait:.0f} s we wait inside a request)"
            ) from failure
        return delay

    # ---- one attempt ---------------------------------------------------------------------

    async def _once(
        self, model: str, body: Mapping[str, Any], *, stream: bool, on_chunk: DeltaCallback | None
    ) -> Reply:
        url = self.url(model, stream=stream)
        params = {"alt": "sse"} if stream else None
        self.stats.requests += 1
        try:
            async with self._http.stream("POST", url, params=params, json=dict(body)) as response:
                if response.status_code != 200:
                    raise await self._error_of(response, model)
                content_type = response.headers.get("content-type", "")
                if stream and content_type.startswith("text/event-stream"):
                    return await self._read_sse(response, model, on_chunk)
                raw = await response.aread()
                return await self._read_json(raw, model, on_chunk)
        except httpx.TimeoutException as exc:
            raise TransportError(self._scrub(f"Gemini REST {type(exc).__name__} at {redact_url(url)}"),
                                 retryable=True) from None
        except httpx.HTTPError as exc:
            raise TransportError(self._scrub(f"Gemini REST {type(exc).__name__}: {exc} ({redact_url(url)})"),
                                 retryable=True) from None

    async def _error_of(self, response: httpx.Response, model: str) -> ServiceError:
        raw = b""
        async for piece in response.aiter_bytes():
            raw += piece
            if len(raw) >= MAX_ERROR_BODY:
                break
        if response.status_code == 429:
            self.stats.rate_limited += 1
        error: Mapping[str, Any] | None = None
        text = raw[:500].decode("utf-8", errors="replace")
        try:
            obj = json.loads(raw)
            if isinstance(obj, list) and obj:  # some endpoints wrap errors in a list
                obj = obj[0]
            if isinstance(obj, Mapping) and isinstance(obj.get("error"), Mapping):
                error = obj["error"]
        except ValueError:
            pass
        return classify_error(
            response.status_code, error, model=model,
            retry_after_header=parse_retry_after(response.headers.get("retry-after")),
            text=text, secrets=self._secrets,
        )

    async def _stream_error(self, chunk: Chunk, model: str) -> ServiceError:
        error = chunk.error or {}
        if error.get("code") == 429:
            self.stats.rate_limited += 1
        return classify_error(200, error, model=model, secrets=self._secrets)

    async def _read_sse(self, response: httpx.Response, model: str, on_chunk: DeltaCallback | None) -> Reply:
        parser = SSEParser()
        chunks: list[Chunk] = []

        async def handle(payload: str) -> None:
            try:
                obj = json.loads(payload)
            except ValueError as exc:
                raise ProtocolError(f"SSE chunk is not JSON: {exc}") from None
            chunk = parse_chunk(obj)
            if chunk.error is not None:
                # An error object inside the stream (LIVE_API.md §2 "Errors").
                raise await self._stream_error(chunk, model)
            chunks.append(chunk)
            if on_chunk is not None:
                await on_chunk(chunk)

        async for text in response.aiter_text():
            for payload in parser.feed(text):
                await handle(payload)
        for payload in parser.close():
            await handle(payload)
        if not chunks:
            raise ServiceError("Gemini REST stream ended without any response chunk", http_status=200,
                               retryable=True, code="unavailable")
        return join_chunks(chunks)

    async def _read_json(self, raw: bytes, model: str, on_chunk: DeltaCallback | None) -> Reply:
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"Gemini REST answer is not JSON: {exc}") from None
        # streamGenerateContent without alt=sse answers a JSON array of chunks.
        items = obj if isinstance(obj, list) else [obj]
        chunks = []
        for item in items:
            chunk = parse_chunk(item)
            if chunk.error is not None:
                raise await self._stream_error(chunk, model)
            chunks.append(chunk)
            if on_chunk is not None:
                await on_chunk(chunk)
        return join_chunks(chunks)
