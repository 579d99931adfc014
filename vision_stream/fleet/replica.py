"""One replica of a fleet: owns some of the configured cameras through leases.

Every replica runs with the same cameras file and ``--events nats://...``; this
class decides which cameras it runs (see leases.py for the bucket):

- every ``ttl / 3`` seconds (a *tick*) it renews its heartbeat and its camera
  leases; a renewal refused by its revision check (fenced: the lease expired and
  another replica took it) stops that camera at once;
- placement, balanced by load: ``share = ceil(cameras / live replicas)``. A
  replica owning fewer than ``share`` claims unowned cameras (name order) up to
  it; one owning more than ``share`` hands one over per tick (stops it cleanly,
  flushes its events, deletes its lease). Deterministic, no coordinator: the
  atomic ``create`` of a lease key decides races;
- a dead replica's leases and heartbeat expire after ``ttl``: the survivors see
  one replica fewer, their share grows, they claim its cameras; the camera
  resumes its stored seq (store/nats.py ``_fork``);
- ``drain`` (SIGTERM): stop every owned camera, flush the store, delete the
  leases and the heartbeat, so others take over at once, before the process exits;
- ``--fleet-live-sessions N``: a session that may use Live holds one of N slots
  fleet-wide (quota.py), and the REST limiter takes from a fleet-wide bucket;
- ``StopSession`` for a camera another replica owns is a NATS request on
  ``vision-stream.control.<replica>.stop`` answered by the owner, which stops
  the session and keeps the lease marked ``stopped`` (so nobody restarts it
  while the owner lives; a restarted fleet starts every configured camera, as
  one server does).

While NATS is away (its restart) the cameras keep running and renewals fail
with connection errors, which are only logged: the owner cannot be fenced
without NATS either; the first renewal after the reconnect decides (a lease that
expired meanwhile is lost, and its camera stops; it is claimed again by someone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nats.aio.client import Client
from nats.aio.msg import Msg

from ..backends.factory import resolve_name
from ..backends.gemini_rest.limiter import DEFAULT_BURST, RateLimiter
from ..errors import NotFoundError, PermissionDeniedError, TransportError, UsageError
from ..server.auth import ANONYMOUS, Principal
from ..server.cameras import CameraConfig
from ..store.nats import NatsStore, token
from ..store.nats_conn import connect
from ..v1 import vision_stream_pb2 as pb
from .leases import DEFAULT_TTL, Lease, LeaseLost, LeaseTable, camera_key, open_bucket, replica_key
from .quota import SharedRate, SlotPool

if TYPE_CHECKING:
    from ..server.service import VisionStreamService

log = logging.getLogger(__name__)

CONTROL = "vision-stream.control"
REQUEST_TIMEOUT = 10.0  # a StopSession forwarded to the owner


def default_replica_id() -> str:
    """hostname-pid: unique per process on a machine, readable in the bucket."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class FleetOptions:
    url: str  # nats://HOST:PORT, the same server as --events
    replica_id: str = ""
    ttl: float = DEFAULT_TTL  # lease TTL; renewals every ttl / 3
    live_sessions: int = 0  # --fleet-live-sessions: fleet-wide concurrent Live sessions (0: no limit)

    def __post_init__(self) -> None:
        if not 1.0 <= self.ttl <= 300.0:
            raise UsageError(f"--lease-ttl {self.ttl}: give 1-300 seconds")
        if self.live_sessions < 0:
            raise UsageError(f"--fleet-live-sessions {self.live_sessions}: give 0 (no limit) or more")
        if self.replica_id and not all(c.isalnum() or c in "-_" for c in self.replica_id):
            raise UsageError(f"--replica-id {self.replica_id[:80]!r}: letters, digits, '-' and '_' only")


def share_of(cameras: int, replicas: int) -> int:
    """A replica's fair share: ceil(cameras / live replicas) (at least one replica: this one)."""
    return math.ceil(cameras / max(1, replicas))


class FleetReplica:
    def __init__(self, service: VisionStreamService, cameras: Sequence[CameraConfig], options: FleetOptions) -> None:
        self.service = service
        self.cameras = {c.name: c for c in cameras}
        self.options = options
        self.replica = options.replica_id or default_replica_id()
        self.tick_seconds = options.ttl / 3
        self.owned: dict[str, Lease] = {}
        self._client: Client | None = None
        self._table: LeaseTable | None = None
        self._heartbeat: Lease | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # ticks, stop requests and the drain take turns
        self.live_slots: SlotPool | None = None
        self._releases: set[asyncio.Task[None]] = set()  # slot releases under way (kept referenced)

    @property
    def table(self) -> LeaseTable:
        if self._table is None:
            raise RuntimeError("the fleet replica is not started")
        return self._table

    async def start(self) -> None:
        """Connect, announce this replica, and start placing cameras (the first tick waits one
        period so replicas starting together see each other before claiming)."""
        store = self.service.config.store
        if not isinstance(store, NatsStore):
            raise UsageError("a fleet needs --events nats://HOST:PORT (the replicas share its store)")
        store.fork_unclean = True
        self._client, js = await connect(self.options.url, name=f"vision-stream-fleet-{self.replica}")
        self._table = LeaseTable(await open_bucket(js, self.options.ttl), self.replica, self.options.ttl)
        await self._client.subscribe(f"{CONTROL}.{token(self.replica)}.stop", cb=self._on_stop)
        if self.options.live_sessions:
            self.live_slots = SlotPool(self.table, "live", self.options.live_sessions)
        # The REST quota is the project's: every limiter of this process also takes from the fleet's bucket.
        RateLimiter.shared = SharedRate(self.table, self.service.config.backends.rest_requests_per_minute,
                                        DEFAULT_BURST)
        await self._beat()
        self._task = asyncio.create_task(self._run(), name=f"fleet-{self.replica}")
        log.info("fleet replica %s: %d cameras configured, lease TTL %.1f s", self.replica, len(self.cameras),
                 self.options.ttl)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                async with self._lock:
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or slow: the next tick tries again
                log.warning("fleet replica %s: tick failed: %s: %s", self.replica, type(exc).__name__, exc)

    # ------------------------------------------------------------------ a tick

    async def tick(self) -> None:
        """Renew, then balance: claim up to the share, or hand one camera over above it."""
        await self._beat()
        if self.live_slots is not None:
            await self.live_slots.renew()
        for name, lease in list(self.owned.items()):
            try:
                await self.table.renew(lease)
            except LeaseLost:
                log.warning("fleet replica %s: lost the lease of camera %s (fenced); stopping it", self.replica, name)
                self.owned.pop(name, None)
                await self._stop_camera(name, "lease lost")
        share = share_of(len(self.cameras), len(await self.table.replicas()))
        running = [n for n, lease in self.owned.items() if lease.state == "running"]
        if len(self.owned) > share and running:
            await self.hand_over(running[-1])
            return
        for name in sorted(self.cameras):
            if len(self.owned) >= share:
                break
            if name not in self.owned:
                await self._try_claim(name)

    async def _beat(self) -> None:
        extra = {"cameras": len(self.owned)}
        if self._heartbeat is not None:
            with contextlib.suppress(LeaseLost):
                await self.table.renew(self._heartbeat, extra)
                return
        # First beat, or it expired (NATS away longer than the TTL): take it again.
        self._heartbeat = await self.table.claim(replica_key(self.replica), "alive")
        if self._heartbeat is None:
            raise UsageError(f"--replica-id {self.replica!r} is in use by another live replica")

    async def _try_claim(self, name: str) -> None:
        lease = await self.table.claim(camera_key(name))
        if lease is None:
            return
        self.owned[name] = lease
        try:
            await self.service.start_camera(self.cameras[name])
        except Exception as exc:
            log.warning("fleet replica %s: camera %s did not start: %s", self.replica, name, exc)
            self.owned.pop(name, None)
            await self.table.release(lease)
            return
        log.info("fleet replica %s: camera %s started (lease taken)", self.replica, name)

    async def _stop_camera(self, name: str, reason: str) -> None:
        """Stop the camera's session here and wait until its last event is in the store."""
        with contextlib.suppress(NotFoundError):
            session = self.service.registry.get(name, principal=ANONYMOUS)
            if not session.ended:
                session.stop(reason)
                await session.wait()
        store = self.service.config.store
        if store is not None:
            await store.flush()

    async def hand_over(self, name: str) -> None:
        """Stop ``name`` cleanly, then delete its lease: another replica continues its run."""
        lease = self.owned.pop(name)
        await self._stop_camera(name, "handover")
        await self.table.release(lease)
        log.info("fleet replica %s: camera %s handed over", self.replica, name)

    # ------------------------------------------------------------------- drain

    async def drain(self) -> None:
        """SIGTERM: hand every camera over (stopped, flushed, lease deleted), then leave."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is None:
            return
        RateLimiter.shared = None
        with contextlib.suppress(Exception):  # NATS away at exit: the leases expire at TTL instead
            async with self._lock:
                await asyncio.gather(*(self.hand_over(name) for name in list(self.owned)))
                if self._heartbeat is not None:
                    await self.table.release(self._heartbeat)
        with contextlib.suppress(Exception):
            await self._client.close()
        self._client = None

    # ------------------------------------------------------------ StopSession

    async def _on_stop(self, msg: Msg) -> None:
        """The owner's side of a forwarded StopSession (the asker checked the caller's rights)."""
        try:
            name = json.loads(msg.data)["session"]
            async with self._lock:
                lease = self.owned.get(name)
                if lease is None:
                    raise NotFoundError(f"replica {self.replica} does not run camera {name!r}")
                lease.state = "stopped"
                session = self.service.registry.get(name, principal=ANONYMOUS)
                session.stop("stopped")
                await session.wait()
            from ..server.service import session_info

            reply = {"info": session_info(session).SerializeToString().hex()}
        except Exception as exc:
            reply = {"error": str(exc)[:300]}
        await msg.respond(json.dumps(reply).encode())

    async def stop_remote(self, session_id: str, principal: Principal) -> pb.SessionInfo:
        """StopSession of a camera another replica owns: a request to its owner."""
        store = self.service.config.store
        record = await store.session(session_id) if store is not None else None
        if record is None or session_id not in self.cameras:
            raise NotFoundError(f"no session {session_id!r}")
        from ..server.registry import Ownership

        ownership = Ownership(record.meta.owner, frozenset(record.meta.viewers))
        if not ownership.visible_to(principal):
            raise NotFoundError(f"no session {session_id!r}")
        if not ownership.stoppable_by(principal):
            raise PermissionDeniedError(f"session {session_id!r} is not yours to stop")
        holder = await self.table.holder(camera_key(session_id))
        if holder is None or self._client is None:
            raise NotFoundError(f"session {session_id!r} is not running on any replica")
        subject = f"{CONTROL}.{token(str(holder['replica']))}.stop"
        try:
            answer = await self._client.request(subject, json.dumps({"session": session_id}).encode(),
                                                timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # nats-py: TimeoutError, NoRespondersError
            raise TransportError(f"replica {holder['replica']} did not answer the stop of {session_id!r}: "
                                   f"{type(exc).__name__}") from None
        reply = json.loads(answer.data)
        if "error" in reply:
            raise NotFoundError(reply["error"])
        return pb.SessionInfo.FromString(bytes.fromhex(reply["info"]))

    async def live_slot(self, backend: str) -> Callable[[], None] | None:
        """A fleet-wide Live slot for a session on ``backend`` (one that may use Live: live, or
        auto with a key), or None when it needs none; LimitExceededError when all are held.
        Returns the release to call when the session ends."""
        if self.live_slots is None or resolve_name(backend, self.service.config.backends) != "live":
            return None
        pool, lease = self.live_slots, await self.live_slots.acquire()

        def release() -> None:
            task = asyncio.get_running_loop().create_task(pool.release(lease))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
        return release

    def mark_stopped(self, session_id: str) -> None:
        """A StopSession served here: keep the lease (renewed, state stopped) so nobody restarts it."""
        if session_id in self.owned:
            self.owned[session_id].state = "stopped"

    def runs_here(self, session_id: str) -> bool:
        return session_id in self.owned
