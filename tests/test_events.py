"""The event log: gap-free seq, bounded retention, resume, many subscribers."""

from __future__ import annotations

import asyncio

import pytest

from vision_stream.errors import ResumeAheadError, RetentionGapError
from vision_stream.events import Commentary, EventLog, SessionEnded


async def test_seq_starts_at_one_and_has_no_gaps() -> None:
    log = EventLog("s", retention=100)
    for i in range(10):
        log.append(Commentary(f"c{i}"), media_time=float(i))
    assert [e.seq for e in log.snapshot()] == list(range(1, 11))
    assert log.snapshot(7)[0].seq == 8


async def test_many_subscribers_follow_live_and_replay() -> None:
    log = EventLog("s", retention=1000)
    log.append(Commentary("early"))

    async def read(after: int) -> list[int]:
        return [e.seq async for e in log.follow(after)]

    readers = [asyncio.create_task(read(0)) for _ in range(50)] + [asyncio.create_task(read(1))]
    await asyncio.sleep(0)
    assert log.subscribers == 51
    for i in range(20):
        log.append(Commentary(str(i)))
        if i % 5 == 0:
            await asyncio.sleep(0)
    log.append(SessionEnded("end_of_input"))
    results = await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert all(r == list(range(1, 23)) for r in results[:50])
    assert results[50] == list(range(2, 23))
    assert log.subscribers == 0


async def test_retention_is_bounded_and_gaps_are_explicit() -> None:
    log = EventLog("s", retention=5)
    for i in range(12):
        log.append(Commentary(str(i)))
    assert [e.seq for e in log.snapshot()] == [8, 9, 10, 11, 12]
    log.close()
    with pytest.raises(RetentionGapError, match="oldest kept is 8"):
        _ = [e async for e in log.follow(2)]
    assert [e.seq async for e in log.follow(2, allow_gap=True)] == [8, 9, 10, 11, 12]
    assert [e.seq async for e in log.follow(9)] == [10, 11, 12]


async def test_resuming_after_an_event_not_yet_produced_is_an_error_not_a_silent_wait() -> None:
    """A position from another run (or made up) would otherwise skip events in silence."""
    log = EventLog("s", retention=5)
    for i in range(3):
        log.append(Commentary(str(i)))
    follower = log.follow(3)  # exactly the last event: waits for the next one
    log.append(Commentary("3"))
    assert (await anext(follower)).seq == 4
    await follower.aclose()
    with pytest.raises(ResumeAheadError, match=r"after_seq 5 is past the session's last event \(4\)"):
        _ = [e async for e in log.follow(5)]
    with pytest.raises(ResumeAheadError):
        _ = [e async for e in log.follow(2**64 - 1)]



async def test_a_stalled_subscriber_holds_no_memory_and_others_go_on() -> None:
    log = EventLog("s", retention=10)
    slow = log.follow(0)
    log.append(Commentary("first"))
    first = await anext(slow)  # then it stops reading
    assert first.seq == 1
    for i in range(50):
        log.append(Commentary(str(i)))
    assert len(log.snapshot()) == 10
    with pytest.raises(RetentionGapError):
        await anext(slow)


async def test_follow_encoded_encodes_each_event_once_for_all_subscribers() -> None:
    log = EventLog("s", retention=4)
    calls: list[int] = []

    def encode(event: object) -> str:
        seq = event.seq  # type: ignore[attr-defined]
        calls.append(seq)
        return f"e{seq}"

    async def read(after: int) -> list[str]:
        return [w async for w in log.follow_encoded(encode, after)]

    readers = [asyncio.create_task(read(0)) for _ in range(20)]
    await asyncio.sleep(0)
    for i in range(3):
        log.append(Commentary(str(i)))
        await asyncio.sleep(0)
    log.append(SessionEnded("end_of_input"))
    results = await asyncio.wait_for(asyncio.gather(*readers), 5)
    assert all(r == ["e1", "e2", "e3", "e4"] for r in results)
    assert sorted(calls) == [1, 2, 3, 4]  # once per event, not once per subscriber
    # The cache leaves the window with its events: a late reader sees the same, resumable.
    assert [w async for w in log.follow_encoded(encode, 2)] == ["e3", "e4"]
    assert sorted(calls) == [1, 2, 3, 4]


async def test_follow_encoded_keeps_gaps_explicit_and_bounded() -> None:
    log = EventLog("s", retention=3)
    for i in range(10):
        log.append(Commentary(str(i)))
    log.close()
    assert len(log._encoded) == 3  # bounded by retention, like the events
    with pytest.raises(RetentionGapError):
        _ = [w async for w in log.follow_encoded(lambda e: e.seq, 1)]
    assert [w async for w in log.follow_encoded(lambda e: e.seq, 1, allow_gap=True)] == [8, 9, 10]
    # A second, different encoder is applied uncached and does not disturb the first.
    assert [w async for w in log.follow_encoded(lambda e: -e.seq, 7)] == [-8, -9, -10]
