"""Cluster-wide quotas in the leases bucket: counted Live session slots and the REST rate.

The project's Gemini quotas are per project, not per machine: N replicas each
allowing "their" share would overrun it. Both limits live in the same bucket
as the leases (leases.py), with the same TTL:

- :class:`SlotPool`: ``--fleet-live-sessions N`` is N keys ``slot.live.<i>``; a
  session that may use Live takes one with ``create`` (atomic: two replicas
  never hold the same slot) and its replica renews it every tick; it is
  deleted when the session ends, and expires with a dead replica's leases.
  None free: LimitExceededError (RESOURCE_EXHAUSTED), naming the limit.
- :class:`SharedRate`: the REST limiter's token bucket (backends/gemini_rest/limiter.py)
  kept in one key ``rate.rest``: ``{"tokens", "at"}`` read, refilled by the time
  since ``at``, one token taken, written back with ``update(last=revision)``; a
  revision conflict (another replica took one meanwhile) reads again (bounded
  retries). A key idle longer than the TTL expires: the bucket then starts full
  again, which is what ``TTL * rate`` tokens of refill would give at most anyway
  (at a 10/min quota and 6 s, one token).
"""

from __future__ import annotations

import asyncio
import json
import time

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from ..errors import LimitExceededError
from .leases import Lease, LeaseTable

RATE_KEY = "rate.rest"
RATE_RETRIES = 20


class SlotPool:
    """``size`` counted slots named ``slot.<name>.<i>`` in the leases bucket."""

    def __init__(self, table: LeaseTable, name: str, size: int) -> None:
        self.table, self.name, self.size = table, name, size
        self.held: set[Lease] = set()

    async def acquire(self) -> Lease:
        """A free slot (the lowest free index), or LimitExceededError when all are held fleet-wide."""
        for i in range(self.size):
            lease = await self.table.claim(f"slot.{self.name}.{i}")
            if lease is not None:
                self.held.add(lease)
                return lease
        raise LimitExceededError(f"the fleet runs at most {self.size} {self.name} sessions at once "
                                 f"(--fleet-live-sessions); all are in use")

    async def release(self, lease: Lease) -> None:
        self.held.discard(lease)
        await self.table.release(lease)

    async def renew(self) -> None:
        """Renew every held slot (the replica's tick); a slot lost to expiry is forgotten."""
        for lease in list(self.held):
            try:
                await self.table.renew(lease)
            except Exception:  # LeaseLost (expired while NATS was away): the session keeps it locally
                self.held.discard(lease)


class SharedRate:
    """A token bucket (``per_minute``, ``burst``) shared by every replica through one key."""

    def __init__(self, table: LeaseTable, per_minute: float, burst: int) -> None:
        self.table, self.rate, self.burst = table, per_minute / 60.0, burst

    async def reserve(self) -> float:
        """Take one token; the seconds to wait before the request may start (the debt to repay)."""
        kv = self.table.kv
        for _ in range(RATE_RETRIES):
            now = time.time()  # wall time: the replicas' clocks are compared (NTP-synced machines)
            try:
                entry = await kv.get(RATE_KEY)
            except NotFoundError:  # absent or expired: a full bucket
                tokens, revision = float(self.burst), 0
            else:
                value = json.loads(entry.value or b"{}")
                tokens = min(float(self.burst), value["tokens"] + max(0.0, now - value["at"]) * self.rate)
                revision = entry.revision or 0
            tokens -= 1.0
            data = json.dumps({"tokens": tokens, "at": now}).encode()
            try:
                if revision:
                    await kv.update(RATE_KEY, data, last=revision)
                else:
                    await kv.create(RATE_KEY, data)
            except KeyWrongLastSequenceError:  # another replica took a token meanwhile: again
                continue
            return 0.0 if tokens >= 0 else -tokens / self.rate
        return 1.0 / self.rate  # heavy contention: wait one token's time rather than spin

    async def acquire(self) -> float:
        """Wait for a fleet-wide token; seconds waited."""
        delay = await self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return delay
