"""Fleet-wide quotas in the leases bucket (fleet/quota.py), against a real nats-server with
JetStream on 127.0.0.1: Live session slots counted across replicas (and freed by the TTL
when a replica dies), and the REST limiter's token bucket shared by replicas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers.timing import scaled

from vision_stream.backends.gemini_rest.limiter import RateLimiter
from vision_stream.errors import LimitExceededError
from vision_stream.fleet.leases import LeaseTable, open_bucket
from vision_stream.fleet.quota import SharedRate, SlotPool
from vision_stream.store.nats_conn import connect
from vision_stream.testing.fleet_cluster import INSTALL, Cluster, nats_server_binary

TTL = 1.5


@pytest.fixture
async def tables(tmp_path: Path) -> AsyncIterator[tuple[LeaseTable, LeaseTable]]:
    """Two replicas' lease tables on one fresh bucket."""
    if nats_server_binary() is None:
        pytest.skip(f"nats-server is not installed: {INSTALL}")
    cluster = Cluster(tmp_path, [], replicas=0)
    await asyncio.to_thread(cluster.start_nats)
    clients = []
    try:
        out = []
        for name in ("a", "b"):
            client, js = await connect(cluster.url, name=f"test-{name}")
            clients.append(client)
            out.append(LeaseTable(await open_bucket(js, TTL), name, TTL))
        yield out[0], out[1]
    finally:
        for client in clients:
            await client.close()
        cluster.close()


async def test_live_slots_are_counted_across_replicas_and_expire_with_their_holder(
        tables: tuple[LeaseTable, LeaseTable]) -> None:
    a, b = SlotPool(tables[0], "live", 2), SlotPool(tables[1], "live", 2)
    held_a = await a.acquire()
    await b.acquire()
    with pytest.raises(LimitExceededError, match=r"at most 2 live sessions.*--fleet-live-sessions"):
        await a.acquire()
    await a.release(held_a)
    await b.acquire()  # the freed slot, taken by the other replica
    # b stops renewing (it died): its slots come free within about the TTL.
    deadline = time.monotonic() + scaled(TTL + 5.0)
    while True:
        try:
            await a.acquire()
            break
        except LimitExceededError:
            assert time.monotonic() < deadline, "a dead replica's slot never came free"
            await asyncio.sleep(0.1)


async def test_rest_rate_is_one_bucket_for_every_replica(tables: tuple[LeaseTable, LeaseTable]) -> None:
    rates = [SharedRate(tables[0], 120.0, 2), SharedRate(tables[1], 120.0, 2)]  # 2 per second, burst 2
    delays = [await rates[i % 2].reserve() for i in range(6)]
    # Alternating replicas draw from one bucket: the burst, then half a second more per request.
    assert delays[:2] == [0.0, 0.0]
    for got, want in zip(delays[2:], (0.5, 1.0, 1.5, 2.0), strict=True):
        assert want - 0.1 <= got <= want + 0.05, delays


async def test_rest_limiter_takes_from_the_shared_bucket(tables: tuple[LeaseTable, LeaseTable]) -> None:
    RateLimiter.shared = SharedRate(tables[0], 240.0, 1)  # 4 per second fleet-wide, burst 1
    try:
        limiter = RateLimiter(6000.0, burst=10)  # locally no wait at all
        started = time.monotonic()
        for _ in range(3):
            await limiter.acquire()
        assert time.monotonic() - started >= 0.45  # two waits of 0.25 s from the fleet's bucket
    finally:
        RateLimiter.shared = None
