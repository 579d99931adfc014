"""How a Live connection ended, and whether retrying can help (the Live classifier).

The delays live in :mod:`vision_stream.retry` (one policy for every retrier);
this module only says what an ending *means*.

Close codes (LIVE_API.md "Close codes"): 1000 after ``goAway`` -> resume at
once; 1000 otherwise, 1001, 1006 (no close frame), 1011-1014 -> transient, back
off and resume; 1011 saying the quota is exhausted -> transient but wait long;
1007 (invalid argument, bad key), 1008 (unknown model) and other protocol
errors -> permanent. A connection that was accepted and then closed cleanly
before ``setupComplete`` is permanent too: retrying it would loop.
HTTP refusals of the upgrade: :data:`~vision_stream.retry.TRANSIENT_HTTP`
transient, other 4xx permanent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...retry import is_transient_http

TRANSIENT_CLOSE_CODES = frozenset({1000, 1001, 1006, 1011, 1012, 1013, 1014})
_QUOTA_MARKERS = ("resource has been exhausted", "exceeded your current quota", "quota")


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


def is_quota_ending(ending: Ending) -> bool:
    """A quota refusal: 1011 (or an HTTP 429 upgrade refusal) whose reason names the quota.

    The close reason is the only structured signal the Live API gives (no
    ``RetryInfo`` on a WebSocket), so this is read here, once, and carried on
    as ``ServiceError.code == "quota"``: nobody downstream reads the text again.
    """
    text = ending.reason.lower()
    return (ending.code == 1011 or (ending.http and ending.code == 429)) and any(m in text for m in _QUOTA_MARKERS)


def is_transient(ending: Ending) -> bool:
    """False for endings that retrying cannot fix (bad key, bad request, unknown model)."""
    if ending.local or ending.go_away:
        return True
    if ending.http:
        return is_transient_http(ending.code)
    if ending.code == 0:
        return True  # refused, reset, DNS, timeout: the network
    if ending.code in (1000, 1001) and ending.before_setup:
        return False  # accepted, then closed at once: permanent
    return ending.code in TRANSIENT_CLOSE_CODES
