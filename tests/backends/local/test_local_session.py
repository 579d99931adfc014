"""LocalBackend / LocalSession through the BackendSession interface, with real pixels and samples."""

from __future__ import annotations

import asyncio

import pytest
from helpers.scenes import hard_cut, moving_square, static_scene, tone_audio

from vision_stream.backends.local import LocalBackend, LocalSession, describe_jpegs
from vision_stream.config import SessionSettings
from vision_stream.errors import SessionError
from vision_stream.events import BackendEvent, Commentary, Detection
from vision_stream.media.types import AudioChunk, SampledFrame


async def open_session(queue_size: int = 256) -> LocalSession:
    backend = LocalBackend(queue_size=queue_size)
    assert backend.name == "local"
    session = await backend.open(SessionSettings(session_id="s1"))
    assert session.name == "local" and session.model == ""
    return session


async def feed(session: LocalSession, frames: list[SampledFrame], audio: list[AudioChunk],
               prompts: dict[float, tuple[str, str]]) -> None:
    """Interleave frames and audio in media-time order, prompting after the frame at each given time."""
    items: list[tuple[float, int, object]] = [(f.media_time, 0, f) for f in frames]
    items += [(c.media_time, 1, c) for c in audio]
    for _, _, item in sorted(items, key=lambda x: (x[0], x[1])):
        if isinstance(item, SampledFrame):
            await session.send_frame(item)
            if item.media_time in prompts:
                text, reason = prompts[item.media_time]
                await session.prompt(text, reason=reason)
        else:
            assert isinstance(item, AudioChunk)
            await session.send_audio(item)
    await session.end_audio()
    await session.prompt("", reason="final")
    await session.close()


async def run_session(frames: list[SampledFrame], audio: list[AudioChunk],
                      prompts: dict[float, tuple[str, str]]) -> list[BackendEvent]:
    session = await open_session()
    async with asyncio.TaskGroup() as group:
        group.create_task(feed(session, frames, audio, prompts))
        events = [event async for event in session.events()]
    return events


def scenario() -> tuple[list[SampledFrame], list[AudioChunk]]:
    frames = moving_square(12, start=4)
    cut = hard_cut(12, cut=8)
    frames = frames[:8] + cut[8:]
    audio = tone_audio(12.0, [(2.0, 3.0), (9.0, 11.0)])
    return frames, audio


async def test_detections_and_commentary_over_a_session() -> None:
    frames, audio = scenario()
    prompts = {5.0: ("", "cadence"), 6.0: ("What is the man doing?", "client"), 11.0: ("", "cadence")}
    events = await run_session(frames, audio, prompts)
    detections = [(e.media_time, e.payload.label) for e in events if isinstance(e.payload, Detection)]
    assert detections == [
        (2.0, "audio_activity"),
        (5.0, "motion"),
        (8.0, "scene_cut"),
        (9.0, "audio_activity"),
    ]
    assert all(e.payload.backend == "local" for e in events)
    commentary = [e for e in events if isinstance(e.payload, Commentary)]
    assert [c.payload.turn_id for c in commentary] == ["local-1", "local-2", "local-3", "local-4"]
    assert all(c.payload.final for c in commentary)
    first, client, second, final = (c.payload.text for c in commentary)
    assert first.startswith("Over the last 5.0 s (6 frames)")
    assert "motion in the lower-left" in first and "audio active" in first
    assert "peaking at -20 dBFS" in first  # the tone burst is -20 dBFS RMS
    assert 'You asked: "What is the man doing?"' in client and "not a language model" in client
    assert "one scene cut at 8.0 s" in second and "one scene cut" not in first
    assert final.startswith("Whole session (0.0–12.0 s, 12 frames)")
    assert "one scene cut at 8.0 s" in final and "2 onsets" in final
    assert commentary[0].media_time == 5.0


async def test_two_runs_give_identical_events() -> None:
    frames, audio = scenario()
    prompts = {6.0: ("", "cadence")}
    first = await run_session(frames, audio, prompts)
    second = await run_session(frames, audio, prompts)
    assert first == second and len(first) > 4


async def test_static_scene_and_silence_give_only_commentary() -> None:
    audio = tone_audio(6.0, [])
    events = await run_session(static_scene(6), audio, {5.0: ("", "cadence")})
    assert all(isinstance(e.payload, Commentary) for e in events)
    assert "no motion" in events[0].payload.text and "no audio activity" in events[0].payload.text


async def test_full_queue_blocks_the_producer_without_losing_events() -> None:
    session = await open_session(queue_size=1)
    frames = moving_square(8, start=1)
    sender = asyncio.create_task(feed(session, frames, [], {f.media_time: ("", "cadence") for f in frames}))
    try:
        await asyncio.sleep(0.5)
        assert not sender.done()  # waiting for the consumer, not dropping
        events = [event async for event in session.events()]
        await sender
    finally:
        sender.cancel()
    kinds = [type(e.payload).__name__ for e in events]
    assert kinds.count("Commentary") == 9 and kinds.count("Detection") == 1


async def test_close_ends_events_and_later_sends_fail() -> None:
    session = await open_session()
    await session.send_tool_result("call-1", "anything", {"ok": True})  # ignored
    await session.close()
    await session.close()  # idempotent
    assert [e async for e in session.events()] == []
    with pytest.raises(SessionError):
        await session.send_frame(static_scene(1)[0])
    with pytest.raises(SessionError):
        await session.prompt("", reason="cadence")


async def test_frames_are_analysed_off_the_loop_in_order() -> None:
    session = await open_session()
    frames = moving_square(6, start=2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    try:
        # Concurrent send_frame calls still run strictly in call order.
        await asyncio.gather(*(session.send_frame(f) for f in frames))
    finally:
        tick_task.cancel()
    await session.close()
    events = [e async for e in session.events()]
    assert [(e.media_time, e.payload.label) for e in events] == [(3.0, "motion")]
    assert ticks > len(frames)  # the loop kept running while frames were analysed


def test_describe_jpegs_is_exported() -> None:
    text, detections = describe_jpegs([f.jpeg for f in hard_cut(4, cut=2)])
    assert "one scene cut at frame 3" in text
    assert [d.label for d in detections] == ["scene_cut"]
