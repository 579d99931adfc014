"""Limits per client: session slots, input timeouts, a message rate.

A *client* is the key the limits are counted under (:func:`client_key`): the
authenticated principal's name, or, with authentication off (every caller is
``ANONYMOUS``), the caller's IP address, so one host flooding an open server
cannot take every slot. On loopback without tokens every local client shares
one key; run with ``--auth-tokens`` to tell local clients apart.

A slot is taken when a session-creating call *starts* (before its first
message arrives), so calls that never send anything count against the limits
too, and is given back when the call fails before starting a session or, once
a session runs, when that session ends (sessions outlive their calls).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import LimitExceededError, UsageError
from .auth import ANONYMOUS, Principal

# Retry hint for a refused session slot: slots free as sessions end or as
# silent calls time out, neither of which is predictable; one second keeps a
# polite client from spinning without making it wait long.
SLOT_RETRY_AFTER = 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientLimits:
    """What one client may hold and send.

    sessions_per_client: sessions (and calls still waiting for their first
        message) one client may hold at once; the server-wide bound is
        ``Limits.max_sessions``.
    idle_timeout: seconds a ``Stream`` may go without sending media (frame,
        audio or container bytes) before it ends with DEADLINE_EXCEEDED.
    first_message_timeout: seconds a ``Stream`` may take to send its config.
    message_rate: ``Stream`` messages per second one client may send (all its
        streams together), refilled continuously.
    message_burst: messages a client may send at once above the rate.
    """

    sessions_per_client: int = 16
    idle_timeout: float = 60.0
    first_message_timeout: float = 10.0
    message_rate: float = 1000.0
    message_burst: int = 2000

    def __post_init__(self) -> None:
        if self.sessions_per_client < 1:
            raise UsageError("sessions_per_client must be >= 1")
        for name in ("idle_timeout", "first_message_timeout", "message_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a positive number of seconds (or messages/s), got {value}")
        if self.message_burst < 1:
            raise UsageError("message_burst must be >= 1")


def client_key(principal: Principal, peer: str) -> str:
    """The key limits are counted under: the principal's name, or for the
    anonymous principal (authentication off) the peer's IP address.

    ``peer`` is gRPC's ``context.peer()``: ``ipv4:1.2.3.4:5678``,
    ``ipv6:[::1]:5678`` or ``unix:/path``. The port is dropped (one host, any
    number of connections, one key).
    """
    if principal != ANONYMOUS:
        return principal.name
    kind, _, address = peer.partition(":")
    if kind == "ipv6" and address.startswith("["):
        host = address[1:].partition("]")[0]
    elif kind == "ipv4":
        host = address.rpartition(":")[0]
    else:
        host = peer
    return f"anonymous@{host}"


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take()`` says how long to wait when empty."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


@dataclass
class _Client:
    slots: int = 0
    bucket: TokenBucket | None = None


@dataclass
class Slot:
    """One held session slot; :meth:`release` is idempotent (called when the
    call fails before a session starts, or by the session when it ends)."""

    key: str
    _owner: ClientTracker = field(repr=False)
    pending: bool = True
    released: bool = False

    def bind(self) -> None:
        """The call's session started: the slot now counts as that running session."""
        if self.pending and not self.released:
            self.pending = False
            self._owner.pending -= 1

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._owner.give_back(self)


class ClientTracker:
    """Slots and message buckets per client key (event-loop only, no locking).

    The global bound counts calls still waiting for their first message plus
    the registry's running sessions (``running()``), so silent calls cannot
    be opened beyond ``max_sessions`` either.
    """

    def __init__(self, limits: ClientLimits, *, max_sessions: int, running: Callable[[], int]) -> None:
        self.limits = limits
        self.max_sessions = max_sessions
        self._running = running
        self._clients: dict[str, _Client] = {}
        self.pending = 0  # slots taken by calls whose session has not started yet

    def acquire(self, key: str) -> Slot:
        """Take a slot for ``key`` or raise LimitExceededError (with a retry hint)."""
        client = self._clients.get(key)
        held = client.slots if client else 0
        if held >= self.limits.sessions_per_client:
            raise LimitExceededError(
                f"too many sessions for this client: at most {self.limits.sessions_per_client} at once "
                "(including calls that have not sent their config yet)", retry_after=SLOT_RETRY_AFTER)
        if self.pending + self._running() >= self.max_sessions:
            raise LimitExceededError(f"too many sessions: the server runs at most {self.max_sessions}",
                                     retry_after=SLOT_RETRY_AFTER)
        if client is None:
            client = self._clients[key] = _Client()
        client.slots += 1
        self.pending += 1
        return Slot(key, self)

    def give_back(self, slot: Slot) -> None:
        if slot.pending:
            self.pending -= 1
        client = self._clients.get(slot.key)
        if client is None:
            return
        client.slots -= 1
        if client.slots <= 0:
            # A client holding nothing is forgotten (its bucket too): the table
            # stays bounded by the clients currently holding slots.
            del self._clients[slot.key]

    def take_message(self, key: str, number: int) -> None:
        """Count ``Stream`` message ``number`` against ``key``'s rate; raise when over it."""
        client = self._clients.get(key)
        if client is None:  # no slot held (cannot happen for a running Stream)
            return
        if client.bucket is None:
            client.bucket = TokenBucket(self.limits.message_rate, self.limits.message_burst)
        wait = client.bucket.take()
        if wait > 0:
            raise LimitExceededError(
                f"message {number}: message rate exceeded: at most {self.limits.message_rate:g} messages/s "
                f"(bursts of {self.limits.message_burst}) per client", retry_after=wait, code="rate_limited")

    def held(self, key: str) -> int:
        client = self._clients.get(key)
        return client.slots if client else 0
