"""Retry policy: which endings are transient, and how long to wait before the next try.

Close codes (LIVE_API.md "Close codes"): 1000 after ``goAway`` -> resume at
once; 1000 otherwise, 1001, 1006 (no close frame), 1011-1014 -> transient, back
off and resume; 1011 saying the quota is exhausted -> transient but wait long;
1007 (invalid argument, bad key), 1008 (unknown model) and other protocol
errors -> permanent. A connection that was accepted and then closed cleanly
before ``setupComplete`` is permanent too: retrying it would loop.
HTTP refusals of the upgrade: 408/429/5xx transient, other 4xx permanent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .settings import ReconnectPolicy

TRANSIENT_CLOSE_CODES = frozenset({1000, 1001, 1006, 1011, 1012, 1013, 1014})
TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})
_QUOTA_MARKERS = ("resource has been exhausted", "exceeded your current quota", "quota")
_MAX_DOUBLINGS = 40  # 2**40 times any sane base is past any cap


@dataclass(frozen=True, slots=True)
class Ending:
    """How one connection ended, as the retry policy sees it.

    code: close code (1006 when no close frame came), or the HTTP status of a
        refused upgrade, or 0 for a network error before any response.
    reason: the server's reason text (safe to show).
    before_setup: the connection ended before ``setupComplete``.
    go_away: the server had announced the end with ``goAway``.
    local: we decided to end it (stall, goAway rotation); ``reason`` says why.
    http: ``code`` is an HTTP status.
    """

    code: int
    reason: str = ""
    before_setup: bool = False
    go_away: bool = False
    local: bool = False
    http: bool = False

    @property
    def label(self) -> str:
        """Short text for a BackendChanged reason: ``"goAway"``, ``"1011 Internal error..."``."""
        if self.go_away and not self.http:
            return "goAway"
        if self.local:
            return self.reason
        if self.http:
            return f"HTTP {self.code} {self.reason}".strip()
        if self.code == 0:
            return f"connect failed: {self.reason}".strip()
        return f"{self.code} {self.reason}".strip()


def is_quota(ending: Ending) -> bool:
    text = ending.reason.lower()
    return (ending.code == 1011 or (ending.http and ending.code == 429)) and any(m in text for m in _QUOTA_MARKERS)


def is_transient(ending: Ending) -> bool:
    """False for endings that retrying cannot fix (bad key, bad request, unknown model)."""
    if ending.local or ending.go_away:
        return True
    if ending.http:
        return ending.code in TRANSIENT_HTTP
    if ending.code == 0:
        return True  # refused, reset, DNS, timeout: the network
    if ending.code in (1000, 1001) and ending.before_setup:
        return False  # accepted, then closed at once: permanent
    return ending.code in TRANSIENT_CLOSE_CODES


class Backoff:
    """Jittered exponential backoff over consecutive failures; reset after a stable connection."""

    def __init__(self, policy: ReconnectPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.failures = 0
        self._rng = rng or random.Random()

    @property
    def exhausted(self) -> bool:
        """True once ``max_attempts`` consecutive attempts failed (never when it is None)."""
        limit = self.policy.max_attempts
        return limit is not None and self.failures >= limit

    def failed(self, ending: Ending) -> float:
        """Count one failure; the delay before the next attempt, seconds."""
        self.failures += 1
        if is_quota(ending):
            return self.policy.quota_backoff
        # The exponent is capped: retrying forever must not overflow a float (2.0 ** 1024).
        growth = 2.0 ** min(self.failures - 1, _MAX_DOUBLINGS)
        delay = min(self.policy.max_backoff, self.policy.base_backoff * growth)
        return delay * (1.0 - self.policy.jitter * self._rng.random())

    def stable(self) -> None:
        """The connection lived long enough: the next failure starts from the base delay."""
        self.failures = 0
