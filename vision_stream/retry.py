"""The one retry policy: capped, jittered exponential backoff, and the verdicts errors carry.

Who retries (a camera reconnecting, the Live driver reconnecting, a REST
request, the failover chain probing a failed link) is the caller's business;
*how long to wait* and *whether retrying can help* live here, once.

- :class:`RetryPolicy`: the validated configuration (a frozen value object).
- :class:`Backoff`: the state of one retrier's consecutive failures. Neither
  sleeps nor reads a clock: the caller asks for the next delay and waits on
  its own terms (a stop event, ``asyncio.sleep``), so a stop interrupts a wait
  at once, and tests drive it with plain numbers.
- Verdicts: every error carries ``retryable`` and ``code`` (``"quota"`` for a
  quota refusal) and, when the peer said so, ``retry_after`` (seconds): see
  ``vision_stream.errors``. Transport classifiers (HTTP statuses, WebSocket
  close codes, FFmpeg errors) stay with their transports but set these fields,
  so nobody downstream guesses from message text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import UsageError, VisionStreamError

__all__ = ["QUOTA_CODES", "TRANSIENT_HTTP", "Backoff", "RetryPolicy", "is_quota", "is_transient_http"]

# HTTP statuses worth retrying (RFC 9110 408/429 and the gateway/server family
# that proxies and Google's front ends answer while a backend restarts).
TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})

_MAX_DOUBLINGS = 60  # the exponent is capped: retrying for days must not overflow a float


def is_transient_http(status: int) -> bool:
    """True for HTTP statuses that retrying may fix."""
    return status in TRANSIENT_HTTP


# Verdict codes of a quota refusal: "quota" (retry after the delay) and REST's
# "quota_per_day" (retrying before the next Pacific day is pointless).
QUOTA_CODES = frozenset({"quota", "quota_per_day"})


def is_quota(error: BaseException | None) -> bool:
    """True for an error whose verdict says a quota refused the call (``code`` in QUOTA_CODES)."""
    return isinstance(error, VisionStreamError) and error.code in QUOTA_CODES


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How a retrier waits between consecutive failed attempts.

    initial_delay: wait after the first failure, seconds.
    max_delay: cap on any single wait, seconds.
    multiplier: growth of the wait per consecutive failure.
    jitter: +/- fraction of randomness on each wait (0..1), so many clients
        (cameras behind one NVR, sessions behind one key) do not retry in lockstep.
    max_attempts: consecutive failures after which the retrier gives up;
        None retries forever.
    stable_after: seconds of success after which a later failure starts from
        ``initial_delay`` again (the caller decides what "success" means and
        calls :meth:`Backoff.reset`).
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None
    stable_after: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay <= 3600:
            raise UsageError(f"retry initial_delay must be in (0, 3600] seconds, got {self.initial_delay}")
        if not self.initial_delay <= self.max_delay <= 86400:
            raise UsageError(f"retry max_delay must be in [initial_delay, 86400] seconds, got {self.max_delay}")
        if not 1 <= self.multiplier <= 10:
            raise UsageError(f"retry multiplier must be in [1, 10], got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise UsageError(f"retry jitter must be in [0, 1], got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError(f"retry max_attempts must be >= 1 (or unset for forever), got {self.max_attempts}")
        if self.stable_after < 0:
            raise UsageError(f"retry stable_after must be >= 0 seconds, got {self.stable_after}")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """The wait after ``failures`` consecutive failures (>= 1), jittered and capped, seconds."""
        growth = self.multiplier ** min(max(failures, 1) - 1, _MAX_DOUBLINGS)
        base = min(self.max_delay, self.initial_delay * growth)
        spread = base * self.jitter
        offset = (rng or random).uniform(-spread, spread) if spread else 0.0
        return max(0.0, min(self.max_delay, base + offset))


class Backoff:
    """One retrier's consecutive failures and the wait each one earns."""

    def __init__(self, policy: RetryPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self.failures = 0  # consecutive failed attempts since the last reset

    @property
    def exhausted(self) -> bool:
        """True once ``max_attempts`` consecutive attempts have failed (never when it is None)."""
        limit = self.policy.max_attempts
        return limit is not None and self.failures >= limit

    def fail(self, *, at_least: float = 0.0) -> float | None:
        """Record a failed attempt; the wait before the next one (seconds, never below
        ``at_least``: a server's own retry delay), or None when exhausted."""
        self.failures += 1
        if self.exhausted:
            return None
        return max(at_least, self.policy.delay(self.failures, self._rng))

    def reset(self) -> None:
        """Success lasted ``stable_after``: the next failure waits ``initial_delay`` again."""
        self.failures = 0
