"""One contract, three stores (memory, SQLite, NATS JetStream): the same semantics.

Gap-free per-session seq; runs (continued by a configured camera, new otherwise);
retention by count, age and bytes; events and state surviving a restart of the
process (SQLite, NATS: the store is closed and opened again); an EventLog on a
store resuming below its in-memory tail; a store that refuses writes is reported.
NATS runs against a real nats-server (tests/store/conftest.py), skipped without one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from helpers.timing import scaled

from vision_stream.errors import RetentionGapError
from vision_stream.events import Commentary, EventLog, SessionEnded
from vision_stream.store import EventStore, MemoryStore, Retention, SessionMeta, SqliteStore, StoredEvent, StoreSink
from vision_stream.v1 import vision_stream_pb2 as pb

KINDS = ["memory", "sqlite", "nats"]
Factory = Callable[..., Awaitable[EventStore]]


@pytest.fixture(params=KINDS)
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Opens a store of the parametrized kind; called again, the 'same' store after a restart
    (the same data dir / NATS server; memory: a fresh one, nothing survives)."""
    kind = request.param
    server = request.getfixturevalue("nats_server") if kind == "nats" else None
    opened: list[EventStore] = []

    async def make(retention: Retention | None = None, **options: object) -> EventStore:
        store: EventStore
        if kind == "memory":
            store = MemoryStore(retention)
        elif kind == "sqlite":
            store = SqliteStore(tmp_path / "data", retention, **options)  # type: ignore[arg-type]
        else:
            from vision_stream.store.nats import NatsStore

            assert server is not None
            store = NatsStore(server.url, retention, **options)  # type: ignore[arg-type]
        await store.open()
        opened.append(store)
        return store

    make.kind = kind  # type: ignore[attr-defined]
    yield make
    for store in opened:
        await store.close()


def _events(first: int, last: int, size: int = 16, wall: float | None = None) -> list[StoredEvent]:
    import time
    now = time.time() if wall is None else wall
    return [StoredEvent(seq, now, bytes([seq % 251]) * size) for seq in range(first, last + 1)]


async def _restart(make: Factory, store: EventStore, retention: Retention | None = None) -> EventStore:
    await store.close()
    return await make(retention)


META = SessionMeta(source="cam.mp4", backend="local", owner=None, viewers=("alice",), started_at=1.5)


async def test_append_read_gap_free_paged(make_store: Factory) -> None:
    store = await make_store()
    run = await store.begin_run("cam.1", resume=False, meta=META)
    assert run.last_seq == 0 and not run.continued and run.run_id
    for first in range(1, 31, 10):
        assert store.append("cam.1", run.run_id, _events(first, first + 9))
    await store.flush()
    assert await store.last_seq("cam.1") == 30
    assert await store.oldest_seq("cam.1") == 1
    page = await store.read("cam.1", 4, limit=7)
    assert [e.seq for e in page] == list(range(5, 12))
    assert page[0].data == bytes([5]) * 16
    assert [e.seq for e in await store.read("cam.1", 25)] == list(range(26, 31))
    assert await store.read("cam.1", 30) == []
    assert await store.read("nobody", 0) == [] and await store.session("nobody") is None
    assert store.counters.appended == store.counters.written == 30 and store.counters.dropped == 0


async def test_runs_continue_for_a_camera_and_restart_otherwise(make_store: Factory) -> None:
    store = await make_store()
    first = await store.begin_run("cam", resume=True, meta=META)
    store.append("cam", first.run_id, _events(1, 5))
    store.end_session("cam", "shutdown")
    await store.flush()
    record = await store.session("cam")
    assert record is not None and record.ended and record.end_reason == "shutdown" and record.last_seq == 5
    assert record.meta == META

    store = await _restart(make_store, store)
    again = await store.begin_run("cam", resume=True, meta=META)
    if make_store.kind == "memory":  # type: ignore[attr-defined]
        assert not again.continued and again.last_seq == 0  # nothing survived: a new run
        return
    assert again.continued and again.run_id == first.run_id and again.last_seq == 5
    store.append("cam", again.run_id, _events(6, 8))
    await store.flush()
    assert [e.seq for e in await store.read("cam", 0)] == list(range(1, 9))

    fresh = await store.begin_run("cam", resume=False, meta=META)  # a client session reusing the id
    assert not fresh.continued and fresh.run_id != first.run_id and fresh.previous_run == first.run_id
    assert await store.read("cam", 0) == [] and await store.last_seq("cam") == 0
    # A writer of the replaced run is refused, not mixed into the new run.
    store.append("cam", first.run_id, _events(9, 9))
    store.append("cam", fresh.run_id, _events(1, 2))
    await store.flush()
    assert [e.seq for e in await store.read("cam", 0)] == [1, 2]


async def test_a_run_that_did_not_end_cleanly_is_not_continued(make_store: Factory) -> None:
    """Killed mid-run (no end_session): the events followers saw may not all be stored,
    so the camera starts a new run naming the old one, rather than reusing its seqs."""
    store = await make_store()
    first = await store.begin_run("cam", resume=True, meta=META)
    store.append("cam", first.run_id, _events(1, 4))
    await store.flush()
    again = await store.begin_run("cam", resume=True, meta=META)
    assert not again.continued and again.previous_run == first.run_id and again.last_seq == 0


async def test_retention_by_count(make_store: Factory) -> None:
    store = await make_store(Retention(max_events=5, max_age=0, max_bytes=0))
    run = await store.begin_run("s", resume=False, meta=META)
    store.append("s", run.run_id, _events(1, 12))
    await store.flush()
    await _settle(store)
    assert await store.oldest_seq("s") == 8
    assert [e.seq for e in await store.read("s", 0)] == [8, 9, 10, 11, 12]
    assert await store.last_seq("s") == 12


async def test_retention_by_age(make_store: Factory) -> None:
    store = await make_store(Retention(max_events=0, max_age=1.0, max_bytes=0))
    run = await store.begin_run("s", resume=False, meta=META)
    store.append("s", run.run_id, _events(1, 3))
    await store.flush()
    await asyncio.sleep(1.3)  # the events age past max_age (server time for NATS)
    store.append("s", run.run_id, _events(4, 5))
    await store.flush()  # (SQLite's reads hide what aged out before its writer deletes it)
    assert [e.seq for e in await store.read("s", 0)] == [4, 5]
    assert await store.oldest_seq("s") == 4


async def test_retention_by_bytes_keeps_the_newest(make_store: Factory) -> None:
    store = await make_store(Retention(max_events=0, max_age=0, max_bytes=4000))
    run = await store.begin_run("s", resume=False, meta=META)
    store.append("s", run.run_id, _events(1, 20, size=500))
    await store.flush()
    await _settle(store)
    kept = [e.seq for e in await store.read("s", 0)]
    assert kept and kept[-1] == 20 and kept == list(range(kept[0], 21))
    assert 500 * len(kept) <= 4000 and len(kept) >= 4  # NATS counts headers too: fewer, never more


async def test_state_and_sessions_survive_a_restart(make_store: Factory) -> None:
    store = await make_store()
    run = await store.begin_run("cam.2", resume=True, meta=META)
    store.append("cam.2", run.run_id, _events(1, 2))
    await store.put_state("cam.2", "live.handle", "h-123")
    await store.put_state("cam.2", "summary", "a person at the door")
    await store.put_state("cam.2", "summary", "the door closed")
    await store.flush()
    if make_store.kind != "memory":  # type: ignore[attr-defined]
        store = await _restart(make_store, store)
    assert await store.get_state("cam.2", "live.handle") == "h-123"
    assert await store.get_state("cam.2", "summary") == "the door closed"
    assert await store.get_state("cam.2", "other") is None
    listed = {r.session_id: r for r in await store.sessions()}
    assert listed["cam.2"].run_id == run.run_id and listed["cam.2"].last_seq == 2


async def test_event_log_resumes_below_its_tail_across_a_restart(make_store: Factory) -> None:
    """A continued run: the second process's log starts empty at seq 11; a subscriber
    resuming at 3 gets 4..10 from the store, then the live tail, each once."""
    store = await make_store()
    run = await store.begin_run("cam", resume=True, meta=META)
    first = EventLog("cam", retention=4, sink=StoreSink(store, run))
    for i in range(9):
        first.append(Commentary(f"c{i + 1}"))
    first.append(SessionEnded("shutdown"))
    await store.flush()

    durable = make_store.kind != "memory"  # type: ignore[attr-defined]
    if durable:
        store = await _restart(make_store, store)
    run2 = await store.begin_run("cam", resume=True, meta=META)  # memory: the same process, no restart
    assert run2.continued
    second = EventLog("cam", retention=4, sink=StoreSink(store, run2), first_seq=run2.last_seq + 1)
    assert second.last_seq == 10 and second.run_id == run.run_id

    got: list[pb.Event] = []

    async def follow() -> None:
        async for wire in second.follow_stored(3):
            got.append(pb.Event.FromString(wire))

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    for i in range(3):
        second.append(Commentary(f"new{i}"))
    second.append(SessionEnded("end_of_input"))
    await asyncio.wait_for(task, scaled(5.0))
    assert [e.seq for e in got] == list(range(4, 15))
    assert {e.run_id for e in got} == {run.run_id}
    assert got[0].commentary.text == "c4" and got[-1].HasField("session_ended")

    if not durable:
        return
    # A resume point that left the store's retention: OUT_OF_RANGE's error, or with allow_gap the oldest.
    await store.close()
    store = await make_store(Retention(max_events=5, max_age=0, max_bytes=0))
    run3 = await store.begin_run("cam", resume=True, meta=META)
    third = EventLog("cam", retention=2, sink=StoreSink(store, run3), first_seq=run3.last_seq + 1)
    third.append(Commentary("tick"))  # 15: makes the store apply its smaller retention
    await store.flush()
    await _settle(store)
    with pytest.raises(RetentionGapError):
        async for _ in third.follow_stored(2):
            break
    seqs = []
    async for wire in third.follow_stored(2, allow_gap=True):
        seqs.append(pb.Event.FromString(wire).seq)
        if seqs[-1] == 15:
            break
    assert seqs == list(range(seqs[0], 16)) and seqs[0] > 3


async def test_a_store_that_refuses_writes_is_reported(tmp_path: Path) -> None:
    """SQLite with no room in its queue: every write refused, counted, and the log says so once."""
    store = SqliteStore(tmp_path, queue_events=0)
    await store.open()
    try:
        run = await store.begin_run("s", resume=False, meta=META)
        log = EventLog("s", retention=100, sink=StoreSink(store, run))
        log.append(Commentary("a"))
        log.append(Commentary("b"))
        errors = [e for e in log.snapshot() if e.kind == "error"]
        assert len(errors) == 1 and errors[0].payload.code == "store_behind"  # type: ignore[union-attr]
        assert "not persisted" in errors[0].payload.message  # type: ignore[union-attr]
        assert store.counters.dropped == 3 and store.counters.written == 0  # a, the error event, b
    finally:
        await store.close()


async def _settle(store: EventStore) -> None:
    """SQLite enforces retention on its writer thread at most once a second: a flush after
    that interval applies it; the others apply it as they write."""
    if isinstance(store, SqliteStore):
        await asyncio.sleep(1.05)
        store.append("zz-retention-tick", "none", [])
        await store.flush()
