"""A configured camera resumes its Gemini Live session across a server restart (issue 13 item 2).

Real gRPC on loopback, the sample clip looped through PyAV, the Live emulator, SQLite on one
data dir: the newest resumable handle and the rolling summary are stored with the session
(store/continuity.py), presented again after a restart; a handle the server refuses (or one
older than 2 h) gives a fresh session primed with the summary and one status event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers.events import Collector
from helpers.live import API_KEY, checked_emulator
from helpers.paths import SAMPLES
from helpers.server import Served, serve
from helpers.timing import scaled, until

from vision_stream.backends.factory import BackendOptions
from vision_stream.config import Limits
from vision_stream.redact import Secret
from vision_stream.server.access import SourceAccess
from vision_stream.server.cameras import CameraConfig
from vision_stream.server.service import ServiceConfig
from vision_stream.store import EventStore, SqliteStore, open_store
from vision_stream.store.continuity import HANDLE_KEY, SUMMARY_KEY, WRITE_EVERY, handle_value, rolled, stored_handle
from vision_stream.store.nats import NatsStore
from vision_stream.testing import LiveEmulator
from vision_stream.testing.fleet_cluster import Cluster
from vision_stream.testing.nats_server import INSTALL, nats_server_binary
from vision_stream.v1 import vision_stream_pb2 as pb

CAMERA = CameraConfig(name="porch", source=str(SAMPLES / "sample.mp4"), description="porch", loop=True,
                      backend="live", commentary_interval=1.0)


async def _up(data: Path, media_root: Path, emu: LiveEmulator) -> tuple[Served, AsyncIterator[Served]]:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=2),
                           backends=BackendOptions(api_key=Secret(API_KEY), live_url=emu.url),
                           store=SqliteStore(data))
    gen = serve(config, media_root, cameras=[CAMERA])
    return await gen.__anext__(), gen


async def _commentary(served: Served, count: int = 1) -> Collector[pb.Event]:
    """Follow the camera until ``count`` final commentaries came (the model answered)."""
    events = Collector(served.stub.Subscribe(pb.SubscribeRequest(session_id=CAMERA.name)))
    await events.until(lambda: sum(e.HasField("commentary") and e.commentary.final
                                   for e in events.events) >= count, within=20.0, what="final commentary")
    return events


def _setups(emu: LiveEmulator) -> list[dict[str, object]]:
    """Every setup message the emulator received, in order."""
    bodies = (json.loads(m.text) for m in emu.received)
    return [b["setup"] for b in bodies if "setup" in b]


def _texts(emu: LiveEmulator) -> list[str]:
    bodies = (json.loads(m.text) for m in emu.received)
    return [b["realtimeInput"]["text"] for b in bodies if "text" in b.get("realtimeInput", {})]


async def _seed(data: Path, handle: str, at: float, summary: str) -> None:
    """What an earlier process left in the store for the camera."""
    store = SqliteStore(data)
    await store.open()
    try:
        await store.put_state(CAMERA.name, HANDLE_KEY, handle_value(handle, at))
        await store.put_state(CAMERA.name, SUMMARY_KEY, summary)
    finally:
        await store.close()


def test_handle_age_and_summary_bounds() -> None:
    now = time.time()
    assert stored_handle(handle_value("h1", now - 60), now) == "h1"
    assert stored_handle(handle_value("h1", now - 2 * 3600 - 1), now) is None  # Google keeps it 2 h
    assert stored_handle("not json", now) is None and stored_handle(None, now) is None
    summary = ""
    for i in range(200):
        summary = rolled(summary, f"turn {i}: a car passes the porch.")
    assert len(summary.encode()) <= 2048 and summary.endswith("turn 199: a car passes the porch.")


@pytest.mark.slow
async def test_restart_resumes_with_the_last_issued_handle(tmp_path: Path, media_root: Path) -> None:
    data = tmp_path / "data"
    async with checked_emulator() as emu:
        served, gen = await _up(data, media_root, emu)
        try:
            events = await _commentary(served, 2)
            await events.cancel()
        finally:
            await gen.aclose()  # graceful: the session ends, its waiting state is written
        sessions = {id(s): s for s in emu.handles.values()}
        assert len(sessions) == 1
        issued = next(iter(sessions.values())).handles[-1]  # the newest handle the client got
        before = len(emu.connections)
        first_said = [e.commentary.text for e in events.events if e.HasField("commentary") and e.commentary.final]

        served, gen = await _up(data, media_root, emu)
        try:
            await (await _commentary(served)).cancel()
        finally:
            await gen.aclose()
    resumed = emu.connections[before]
    assert resumed.handle == issued and resumed.newest_handle == issued and resumed.setup_complete
    store = SqliteStore(data)
    await store.open()
    try:
        summary = await store.get_state(CAMERA.name, SUMMARY_KEY) or ""
    finally:
        await store.close()
    assert first_said[0] in summary


@pytest.mark.slow
@pytest.mark.parametrize("refused", [True, False], ids=["unknown-handle", "expired-handle"])
async def test_a_handle_that_cannot_resume_starts_fresh_with_the_summary(
        tmp_path: Path, media_root: Path, refused: bool) -> None:
    data = tmp_path / "data"
    summary = "A red car parked in the driveway; a person in a yellow coat walked to the door."
    at = time.time() - (60 if refused else 3 * 3600)
    await _seed(data, "porch-unknown-handle-0123", at, summary)
    async with checked_emulator(strict=False) as emu:  # a refused setup is no schema failure
        served, gen = await _up(data, media_root, emu)
        try:
            events = await _commentary(served)
            await events.cancel()
        finally:
            await gen.aclose()
    setups = _setups(emu)
    if refused:  # presented, refused with 1007 before setupComplete, then a fresh setup
        assert setups[0]["sessionResumption"] == {"handle": "porch-unknown-handle-0123"}
        assert emu.connections[0].close_code == 1007 and not emu.connections[0].setup_complete
        assert setups[1]["sessionResumption"] == {}
    else:  # older than 2 h: never presented
        assert setups[0]["sessionResumption"] == {}
    assert emu.connections[-1].setup_complete
    primed = [t for t in _texts(emu) if summary in t]
    assert len(primed) == 1
    status = [e.error for e in events.events if e.HasField("error") and e.error.code == "live_resume_failed"]
    assert len(status) == 1 and status[0].retryable
    assert ("refused" in status[0].message) == refused and "told what it saw before" in status[0].message


@pytest.mark.parametrize("kind", ["memory", "sqlite", "nats"])
async def test_set_state_goes_through_the_write_queue(kind: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    """set_state never blocks; after flush() (or close) the newest value reads back. On an
    empty NATS bucket sessions() is [] (nats-py raises NoKeysError there)."""
    if kind == "nats":
        server = request.getfixturevalue("nats_server")
        store: EventStore = NatsStore(server.url)
    else:
        store = open_store(kind, data_dir=tmp_path)
    await store.open()
    try:
        assert await store.sessions() == []
        for i in range(3):
            store.set_state("cam", HANDLE_KEY, handle_value(f"h{i}", 1.0))
        await store.flush()
        assert stored_handle(await store.get_state("cam", HANDLE_KEY), 2.0) == "h2"
    finally:
        await store.close()


@pytest.mark.slow
async def test_fleet_takeover_resumes_the_live_session(tmp_path: Path) -> None:
    """Two replicas on one nats-server, one Live camera against the emulator: kill -9 its
    owner; the replica taking it over presents a handle the emulator issued to that session."""
    if nats_server_binary() is None:
        pytest.skip(f"nats-server is not installed: {INSTALL}")
    async with checked_emulator() as emu:
        cluster = Cluster(tmp_path, ["porch"], replicas=2, ttl=3.0, backend="live",
                          env={"GEMINI_API_KEY": API_KEY}, serve_args=("--live-url", emu.url))
        try:
            await asyncio.to_thread(cluster.start, scaled(30.0))
            owners = await cluster.balanced(scaled(20.0))
            # The first handles came and at least one write interval passed (store/continuity.py).
            await until(lambda: any(s.handles for s in emu.handles.values()), within=20.0, what="a handle")
            await asyncio.sleep(WRITE_EVERY + 1.0)
            before = len(emu.connections)
            await asyncio.to_thread(cluster.replica(owners["porch"]).kill)
            await until(lambda: any(c.setup_complete for c in emu.connections[before:]), within=25.0,
                        what="the takeover's Live session")
        finally:
            await asyncio.to_thread(cluster.close)
    taken = next(c for c in emu.connections[before:] if c.setup_complete)
    issued = {h for s in emu.handles.values() for h in s.handles}
    assert taken.handle in issued
