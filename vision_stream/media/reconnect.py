"""Reconnect policy for live sources: capped, jittered exponential backoff (sans-I/O).

:class:`ReconnectPolicy` is the validated configuration; :class:`Backoff` is the
state of one source's retries. Neither sleeps nor reads a clock: the live
source asks for the next delay and waits on its own stop event, so a stop
interrupts the wait at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import UsageError

__all__ = ["Backoff", "ReconnectPolicy"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconnectPolicy:
    """How a live source retries after losing (or failing to open) its stream.

    initial_delay: wait before the first retry, seconds.
    max_delay: cap on any single wait, seconds.
    multiplier: growth of the wait per consecutive failure.
    jitter: +/- fraction of randomness on each wait (0..1), so many cameras
        behind one NVR do not reconnect in lockstep.
    max_attempts: consecutive failed attempts after which the source gives up
        ("failed"); None retries forever (what an NVR does for a camera).
    stable_after: seconds of streaming after which a later drop starts the
        backoff from ``initial_delay`` again (a flapping camera keeps backing off).
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None
    stable_after: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay <= 3600:
            raise UsageError(f"reconnect initial_delay must be in (0, 3600] seconds, got {self.initial_delay}")
        if not self.initial_delay <= self.max_delay <= 3600:
            raise UsageError(
                f"reconnect max_delay must be in [initial_delay, 3600] seconds, got {self.max_delay}"
            )
        if not 1 <= self.multiplier <= 10:
            raise UsageError(f"reconnect multiplier must be in [1, 10], got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise UsageError(f"reconnect jitter must be in [0, 1], got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError(f"reconnect max_attempts must be >= 1 (or unset for forever), got {self.max_attempts}")
        if self.stable_after < 0:
            raise UsageError(f"reconnect stable_after must be >= 0 seconds, got {self.stable_after}")


class Backoff:
    """Consecutive-failure counter that yields the next wait, in seconds."""

    def __init__(self, policy: ReconnectPolicy, *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self.failures = 0  # consecutive failed attempts since the last reset

    @property
    def exhausted(self) -> bool:
        """True once ``max_attempts`` consecutive attempts have failed."""
        limit = self.policy.max_attempts
        return limit is not None and self.failures >= limit

    def fail(self) -> float | None:
        """Record a failed attempt; the wait before the next one, or None when exhausted."""
        self.failures += 1
        if self.exhausted:
            return None
        p = self.policy
        base = min(p.max_delay, p.initial_delay * p.multiplier ** (self.failures - 1))
        spread = base * p.jitter
        return max(0.0, min(p.max_delay, base + self._rng.uniform(-spread, spread)))

    def reset(self) -> None:
        """The stream was stable: the next failure waits ``initial_delay`` again."""
        self.failures = 0
