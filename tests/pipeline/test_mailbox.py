"""The source→backend handoff: newest frame wins (counted) or lossless backpressure."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from helpers.timing import scaled

from vision_stream.media.types import AudioChunk, SampledFrame
from vision_stream.pipeline.mailbox import Mailbox, MailboxClosed


def frame(t: float) -> SampledFrame:
    return SampledFrame(media_time=t, jpeg=b"", width=1, height=1, pixels=np.zeros((1, 1, 3), np.uint8))


def audio(t: float) -> AudioChunk:
    return AudioChunk(pcm=b"\0\0" * 800, media_time=t)


async def test_latest_wins_keeps_order_and_counts_drops() -> None:
    box = Mailbox(lossless=False, frame_slots=1, audio_chunks=3)
    box.put_nowait(frame(0))
    box.put_nowait(audio(0.0))
    box.put_nowait(frame(1))  # replaces frame 0
    for i in range(5):
        box.put_nowait(audio(0.05 * (i + 1)))  # window of 3: two oldest dropped
    box.put_nowait("end")
    got = [await box.get() for _ in range(len(box))]
    assert [type(x).__name__ for x in got] == ["SampledFrame", "AudioChunk", "AudioChunk", "AudioChunk", "str"]
    assert got[0].media_time == 1
    assert [round(x.media_time, 2) for x in got[1:4]] == [0.15, 0.2, 0.25]
    assert box.frames_dropped == 1 and box.audio_dropped == 3


async def test_lossless_blocks_the_producer_instead_of_dropping() -> None:
    box = Mailbox(lossless=True, capacity=2)
    await box.put(frame(0))
    await box.put(frame(1))
    third = asyncio.create_task(box.put(frame(2)))
    await asyncio.sleep(0.05)
    assert not third.done()
    assert (await box.get()).media_time == 0
    await asyncio.wait_for(third, scaled(1))
    assert [(await box.get()).media_time for _ in range(2)] == [1, 2]
    assert box.frames_dropped == 0


async def test_close_wakes_a_blocked_producer() -> None:
    box = Mailbox(lossless=True, capacity=1)
    await box.put(frame(0))
    blocked = asyncio.create_task(box.put(frame(1)))
    await asyncio.sleep(0.01)
    box.close()
    with pytest.raises(MailboxClosed):
        await asyncio.wait_for(blocked, scaled(1))


async def test_a_replaced_frame_leaves_the_count() -> None:
    """Only frames that were really queued count as dropped (sampled = sent + dropped)."""
    box = Mailbox(lossless=False, frame_slots=1, audio_chunks=1)
    box.put_nowait(frame(0))
    box.put_nowait(frame(1))  # replaces frame 0: one drop
    box.put_nowait(audio(0.0))
    box.put_nowait(audio(0.05))  # replaces the first chunk: one drop
    got = [await box.get() for _ in range(len(box))]
    assert [x.media_time for x in got] == [1, 0.05]
    box.put_nowait(frame(2))  # the box is empty again: nothing to replace
    box.put_nowait(audio(0.1))
    assert (await box.get()).media_time == 2 and (await box.get()).media_time == 0.1
    assert box.frames_dropped == 1 and box.audio_dropped == 1
