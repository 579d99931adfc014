"""Leases in a JetStream key-value bucket: who owns which camera, and who is alive.

The bucket ``vision-stream-leases`` has a bucket-wide TTL (JetStream's stream
``max_age``): every key disappears ``ttl`` seconds after its last write unless
renewed. Three kinds of key:

- ``camera.<name>``: the camera's lease, value ``{"replica", "expires", "state"}``;
  taken with ``create`` (JetStream refuses it while the key exists: only one
  replica wins) and renewed with ``update(last=revision)``: a renewal whose
  revision is no longer the latest (the key expired and someone else created it,
  or was deleted) fails with ``KeyWrongLastSequenceError``, which *fences* the
  old owner: it has lost the lease and stops the camera at once.
- ``replica.<id>``: a replica's heartbeat (``{"cameras": n}``), renewed likewise:
  the live replicas are the heartbeat keys present.
- ``slot.<pool>.<i>``: counted slots (fleet/slots.py), leases like a camera's.

Values carry ``expires`` (wall time) for people reading the bucket; the
bucket's TTL is what actually expires them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from ..store.nats import token

log = logging.getLogger(__name__)

BUCKET = "vision-stream-leases"
DEFAULT_TTL = 6.0  # seconds a lease outlives its last renewal


class LeaseLost(Exception):
    """A renewal's revision check failed: another replica holds the key now (fencing)."""


@dataclass(slots=True, eq=False)
class Lease:
    """A key this replica holds, at the revision its last write got (hashed by identity)."""

    key: str
    revision: int
    state: str = "running"


async def open_bucket(js: JetStreamContext, ttl: float) -> KeyValue:
    """The leases bucket (created with ``ttl`` when absent; an existing bucket keeps its own TTL)."""
    try:
        return await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=ttl,
                                                        storage=StorageType.FILE))
    except BadRequestError:  # exists with another TTL: the first replica's configuration wins
        log.warning("leases bucket %s exists with another configuration; keeping it", BUCKET)
        return await js.key_value(BUCKET)


def camera_key(name: str) -> str:
    return f"camera.{token(name)}"


def replica_key(replica: str) -> str:
    return f"replica.{token(replica)}"


class LeaseTable:
    """Create / renew / release keys of the leases bucket for one replica."""

    def __init__(self, kv: KeyValue, replica: str, ttl: float) -> None:
        self.kv, self.replica, self.ttl = kv, replica, ttl

    def _value(self, state: str, extra: dict[str, Any] | None = None) -> bytes:
        return json.dumps({"replica": self.replica, "expires": time.time() + self.ttl, "state": state,
                           **(extra or {})}).encode()

    async def claim(self, key: str, state: str = "running") -> Lease | None:
        """Take ``key`` if nobody holds it (None: held by someone)."""
        try:
            revision = await self.kv.create(key, self._value(state))
        except KeyWrongLastSequenceError:
            return None
        return Lease(key, revision, state)

    async def renew(self, lease: Lease, extra: dict[str, Any] | None = None) -> None:
        """Extend ``lease``; LeaseLost when its revision is not the key's latest (fenced)."""
        try:
            lease.revision = await self.kv.update(lease.key, self._value(lease.state, extra), last=lease.revision)
        except KeyWrongLastSequenceError:
            raise LeaseLost(lease.key) from None

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up at once (others may take it now), only if still ours."""
        with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError):
            await self.kv.delete(lease.key, last=lease.revision)

    async def holder(self, key: str) -> dict[str, Any] | None:
        """The value of ``key`` (None: nobody holds it)."""
        try:
            entry = await self.kv.get(key)
        except NotFoundError:  # KeyNotFoundError, or KeyDeletedError (a released lease)
            return None
        value: dict[str, Any] = json.loads(entry.value or b"{}")
        return value

    async def keys(self, prefix: str) -> list[str]:
        """Keys present under ``prefix`` (``camera.``, ``replica.``, ``slot.NAME.``)."""
        try:
            keys = await self.kv.keys()
        except (NoKeysError, NotFoundError):  # NoKeysError: the bucket is empty
            return []
        return sorted(k for k in keys if k.startswith(prefix))

    async def replicas(self) -> dict[str, dict[str, Any]]:
        """The live replicas (heartbeat keys present) and what their heartbeats say."""
        out = {}
        for key in await self.keys("replica."):
            value = await self.holder(key)
            if value is not None:
                out[str(value.get("replica", key))] = value
        return out
