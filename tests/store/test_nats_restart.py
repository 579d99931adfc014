"""The NATS store survives a restart of nats-server (same port, same JetStream dir): writes
made while it is away are retried in order once the client reconnects, nothing that was
acknowledged is lost, and the session's seq stays gap-free."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers.timing import scaled, until

from vision_stream.store import Retention, SessionMeta, StoredEvent


@pytest.mark.slow  # ~7 s: nats-py's reconnect wait and the lost acks' timeout
async def test_writes_survive_a_nats_server_restart(nats_server: Any) -> None:  # a conftest.NatsServer
    from vision_stream.store.nats import NatsStore

    store = NatsStore(nats_server.url, Retention())
    await store.open()
    try:
        run = await store.begin_run("cam.1", resume=True, meta=SessionMeta(source="x"))
        store.append("cam.1", run.run_id, [StoredEvent(s, 0.0, b"e%d" % s) for s in range(1, 6)])
        await store.flush()
        nats_server.stop()
        store.append("cam.1", run.run_id, [StoredEvent(s, 0.0, b"e%d" % s) for s in range(6, 11)])
        await asyncio.sleep(0.3)
        nats_server.start()
        await until(lambda: store.counters.written == 10, within=20.0, what="the writes after the restart")
        events = await asyncio.wait_for(store.read("cam.1", 0), scaled(10.0))
        assert [e.seq for e in events] == list(range(1, 11))
        assert [e.data for e in events] == [b"e%d" % s for s in range(1, 11)]
        assert await store.last_seq("cam.1") == 10
    finally:
        await store.close()
