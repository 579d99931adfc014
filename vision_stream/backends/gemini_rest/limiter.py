"""Client-side request pacing for the REST backend: a token bucket plus server-imposed holds.

Free-tier REST quotas are per project per minute and per day (LIVE_API.md §2),
so one :class:`RateLimiter` is shared by every session of a backend. Slots are
*reserved* synchronously (no lock, no await between check and update), so it
works from any event loop and many concurrent callers get distinct slots.

A 429's ``RetryInfo.retryDelay`` / ``Retry-After`` becomes a :meth:`hold`: no
request of this backend starts before it ends (the official SDK ignores the
delay; we honour it). A ``PerDay`` quota becomes :meth:`exhaust_day`: no
request until the daily window resets (midnight Pacific, when Google resets
free-tier daily quotas).

Clocks: ``time.monotonic`` for every deadline; the wall clock only to work out
how far away the next Pacific midnight is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from typing import ClassVar, Protocol

from ...errors import UsageError

DEFAULT_PER_MINUTE = 10.0  # Gemini Flash free tier (requests per minute)
DEFAULT_BURST = 2


def seconds_until_pacific_midnight(now_epoch: float | None = None) -> float:
    """Seconds from ``now_epoch`` (wall clock; default now) to the next midnight in Los Angeles."""
    epoch = time.time() if now_epoch is None else now_epoch
    try:
        from zoneinfo import ZoneInfo

        zone: dt.tzinfo = ZoneInfo("America/Los_Angeles")
    except Exception:  # no tz database: Pacific standard time is close enough
        zone = dt.timezone(dt.timedelta(hours=-8))
    now = dt.datetime.fromtimestamp(epoch, zone)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(60.0, (midnight - now).total_seconds())


class SharedQuota(Protocol):
    """A rate shared beyond this process (a fleet's bucket: vision_stream/fleet/quota.py)."""

    async def acquire(self) -> float:
        """Wait for a token; seconds waited."""


class RateLimiter:
    """At most ``per_minute`` request starts a minute on average, ``burst`` at once.

    ``clock`` returns monotonic seconds (tests may pass their own).
    ``shared`` (set once per process by a fleet replica): every limiter also waits for
    a token of the fleet-wide bucket, so N replicas together keep the project's quota.
    """

    shared: ClassVar[SharedQuota | None] = None

    def __init__(
        self,
        per_minute: float = DEFAULT_PER_MINUTE,
        *,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute <= 0:
            raise UsageError(f"REST requests per minute must be > 0, got {per_minute}")
        if burst < 1:
            raise UsageError(f"REST burst must be >= 1, got {burst}")
        self.per_minute = per_minute
        self.burst = burst
        self._clock = clock
        self._rate = per_minute / 60.0  # tokens per second
        self._tokens = float(burst)
        self._updated = clock()
        self.hold_until = 0.0  # monotonic: the server asked us to wait until then
        self.hold_reason = ""
        self.day_exhausted_until = 0.0  # monotonic: the daily quota is gone until then
        self.day_reason = ""
        self.requests_started = 0
        self.waited_seconds = 0.0

    def hold(self, seconds: float, reason: str = "") -> None:
        """No request starts for ``seconds`` (a server retry delay); holds only ever extend."""
        until = self._clock() + max(0.0, seconds)
        if until > self.hold_until:
            self.hold_until = until
            self.hold_reason = reason

    def exhaust_day(self, reason: str, *, seconds: float | None = None) -> None:
        """The daily quota is gone: refuse until the reset (next Pacific midnight by default)."""
        wait = seconds_until_pacific_midnight() if seconds is None else seconds
        self.day_exhausted_until = max(self.day_exhausted_until, self._clock() + wait)
        self.day_reason = reason

    def blocked_for(self) -> float:
        """Seconds until a request may start because of holds (0 when none)."""
        now = self._clock()
        return max(0.0, self.hold_until - now, self.day_exhausted_until - now)

    @property
    def day_exhausted(self) -> bool:
        return self._clock() < self.day_exhausted_until

    def reserve(self) -> float:
        """Take the next slot; the seconds to wait before starting the request."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens -= 1.0
        bucket_wait = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
        self.requests_started += 1
        return max(bucket_wait, self.hold_until - now)

    async def acquire(self) -> float:
        """Wait for a slot (and any hold, also one set while waiting); returns seconds waited."""
        start = self._clock()
        delay = self.reserve()
        while delay > 0:
            await asyncio.sleep(delay)
            delay = self.hold_until - self._clock()  # a hold may have been set meanwhile
        if RateLimiter.shared is not None:  # the fleet's share of the project quota, after ours
            await RateLimiter.shared.acquire()
        waited = self._clock() - start
        self.waited_seconds += waited
        return waited
