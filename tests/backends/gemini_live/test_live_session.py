"""Our Live client against the emulator over loopback (real websockets, real JPEGs)."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
import tracemalloc

import numpy as np
import pytest
from helpers.frames import sampled_frame
from helpers.live import API_KEY, LiveEvents, fast_settings, scene, session_settings

from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveTimeouts
from vision_stream.config import FunctionSpec
from vision_stream.errors import BackendError, ServiceError
from vision_stream.events import (
    AudioOut,
    BackendChanged,
    Commentary,
    Detection,
    ErrorEvent,
    EventLog,
    Transcript,
)
from vision_stream.media.types import AudioChunk
from vision_stream.testing import EmulatorKnobs, Fault

pytestmark = pytest.mark.timeout(60)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def test_commentary_reflects_the_frames_with_detections_transcripts_and_audio(live_emulator) -> None:
    red, bright = sampled_frame(scene("red"), 0.0), sampled_frame(scene("bright"), 3.0)
    rate = 16000
    t = np.arange(rate // 20) / rate
    loud = AudioChunk((np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes(), 0.0)
    quiet = AudioChunk(np.zeros(rate // 20, "<i2").tobytes(), 0.0)
    async with live_emulator() as emu:
        backend = GeminiLiveBackend(fast_settings(emu.url))
        session = await backend.open(session_settings(want_audio_out=True,
                                                      functions=(FunctionSpec(name="open_door"),)))
        events = LiveEvents(session)
        for i in range(6):
            await session.send_frame(red if i < 3 else bright)
            for _ in range(3):
                await session.send_audio(loud if i < 2 else quiet)
            await asyncio.sleep(0.12)
        await session.end_audio()
        await session.prompt("", reason="scene", media_time=3.0)
        await events.until(lambda: len(events.finals()) >= 1)
        await session.prompt("What colour is it?", reason="client")
        await events.until(lambda: len(events.finals()) >= 2)
        await session.close()
        await events.finish()
        setup = emu.client_messages("setup")[0]["setup"]
        responses = emu.client_messages("toolResponse")
        kinds = [next(iter(m["realtimeInput"])) for m in emu.client_messages("realtimeInput")]

    first = events.finals()[0]
    assert "scene cut" in first.text and "gray" in first.text, first.text
    assert events.payloads(Commentary)[0].final is False  # partials stream first
    detection = events.payloads(Detection)[0]
    assert detection.label == "scene_cut" and detection.function_name == "report_event" and detection.call_id
    assert responses[0]["toolResponse"]["functionResponses"][0]["id"] == detection.call_id
    transcripts = events.payloads(Transcript)
    assert transcripts and transcripts[0].source == "input" and transcripts[0].text.startswith("[speech")
    audio = events.payloads(AudioOut)
    assert audio and audio[0].sample_rate == 24000 and audio[0].turn_id == first.turn_id
    assert events.finals()[1].turn_id != first.turn_id
    # What we asked for on the wire:
    assert setup["model"] == "models/gemini-3.8-live"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    # triggerTokens bounds the context re-billed every turn (the cost lever, bench/tokens.py).
    assert setup["contextWindowCompression"] == {"slidingWindow": {}, "triggerTokens": "16384"}
    assert setup["sessionResumption"] == {}
    assert [d["name"] for d in setup["tools"][0]["functionDeclarations"]] == ["report_event", "open_door"]
    assert "mediaChunks" not in kinds and {"video", "audio", "audioStreamEnd", "text"} <= set(kinds)
    counters = session.counters()
    assert counters.prompt_tokens > 0 and counters.response_tokens > 0 and counters.frames_sent == 6


@pytest.mark.slow  # ~3 s of scripted reconnects
async def test_three_go_aways_and_two_1011s_keep_one_session_losing_no_turn(live_emulator) -> None:
    knobs = EmulatorKnobs(api_keys=(API_KEY,), lifetime=0.7, notice=0.4,
                          faults=(Fault(kind="close1011", at=0.35, connections=(2, 4)),))
    frames = [sampled_frame(scene(kind), i * 0.1) for i, kind in enumerate(("red", "green", "bright"))]
    async with live_emulator(knobs) as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url)).open(session_settings())
        events = LiveEvents(session)
        log = EventLog("rotations", retention=100_000)
        accepted: list[str] = []
        i = 0

        def changes() -> list[BackendChanged]:
            return events.payloads(BackendChanged)

        deadline = time.monotonic() + 25
        while (sum(c.reason == "goAway" for c in changes()) < 3
               or sum(c.reason.startswith("1011") for c in changes()) < 2):
            assert time.monotonic() < deadline, changes()
            await session.send_frame(frames[i % 3])
            await session.send_audio(AudioChunk(bytes(1600), i * 0.1))  # 50 ms of silence
            if i % 3 == 0:
                question = f"client question {i}"
                await session.prompt(question, reason="client")
                accepted.append(question)
            i += 1
            await asyncio.sleep(0.1)
        await session.prompt("", reason="final")
        await session.close()
        await events.finish()
        for event in events.events:
            log.append(event.payload, event.media_time)
        records = list(emu.connections)
        emulated = list(emu.sessions.values())
        audio_received = sum(1 for m in emu.client_messages("realtimeInput") if "audio" in m["realtimeInput"])

    reasons = [c.reason for c in changes()]
    assert reasons.count("goAway") >= 3 and sum(r.startswith("1011 Internal error") for r in reasons) >= 2
    # One logical session: one server-side session, every reconnect resumed with the newest handle.
    assert len(emulated) == 1
    assert records[0].handle is None
    for record in records[1:]:
        assert record.handle is not None and record.handle == record.newest_handle, record
    # No lost turn: the newest client prompt and the final one reached the model and were answered.
    answered = emulated[0].prompts
    assert accepted[-1] in answered and any("stream has ended" in p for p in answered)
    assert len(events.finals()) >= len(set(answered))
    seqs = [e.seq for e in log.snapshot()]
    assert seqs == list(range(1, len(seqs) + 1))  # one gap-free seq
    assert session.counters().reconnects == len(reasons) >= 5
    # Audio offered during the gaps waited in the bounded window and went out after;
    # only a chunk on the wire when the server cut the socket can be lost.
    assert session.counters().audio_chunks_dropped == 0
    assert audio_received >= i - 2 * len(reasons), (audio_received, i)
    gaps = list(session.reconnect_gaps)
    print(f"\nreconnect gaps (s): n={len(gaps)} max={max(gaps):.4f} median={statistics.median(gaps):.4f}")


async def test_bad_key_and_unknown_model_fail_once_without_a_retry_loop(live_emulator, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    async with live_emulator(strict=False) as emu:
        with pytest.raises(ServiceError) as bad_key:
            await GeminiLiveBackend(fast_settings(emu.url, api_key="AIza-WRONG-key-999")).open(session_settings())
        assert len(emu.connections) == 1
        with pytest.raises(ServiceError) as bad_model:
            await GeminiLiveBackend(fast_settings(emu.url, model="gemini-2.5-flash-live")).open(session_settings())
        assert len(emu.connections) == 2
    assert bad_key.value.status == 1007 and not bad_key.value.retryable
    assert "API key not valid. Please pass a valid API key." in str(bad_key.value)
    assert bad_model.value.status == 1008 and not bad_model.value.retryable
    assert "models/gemini-2.5-flash-live is not found for API version v1" in str(bad_model.value)
    assert "AIza-WRONG-key-999" not in caplog.text and API_KEY not in caplog.text
    assert "AIza-WRONG-key-999" not in str(bad_key.value)


async def test_refused_upgrades_permanent_404_and_transient_503(live_emulator) -> None:
    async with live_emulator(EmulatorKnobs(refuse_status=404), strict=False) as emu:
        with pytest.raises(ServiceError) as refused:
            await GeminiLiveBackend(fast_settings(emu.url)).open(session_settings())
        assert emu.upgrade_attempts == 1
    assert refused.value.status == 404 and not refused.value.retryable
    async with live_emulator(EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503, refuse_count=2)) as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url)).open(session_settings())
        assert session.connection_attempts == 3
        await session.close()


async def test_permanent_failure_mid_session_ends_events_and_sends_raise(live_emulator) -> None:
    # Without compression an audio+video session hits its (scaled) limit; its
    # handles expire, so resuming is refused with 1007: permanent, reported once.
    knobs = EmulatorKnobs(api_keys=(API_KEY,)).scaled(0.004)  # 2 min -> 0.48 s
    frame = sampled_frame(scene("red"), 0.0)
    async with live_emulator(knobs) as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, compression=False)).open(session_settings())
        events = LiveEvents(session)
        with pytest.raises(BackendError):
            for _ in range(200):
                await session.send_frame(frame)
                await session.send_audio(AudioChunk(bytes(1600), 0.0))
                await asyncio.sleep(0.02)
        await events.finish()
        attempts = len(emu.connections)
    errors = events.payloads(ErrorEvent)
    assert len(errors) == 1 and not errors[0].retryable and "1007" in errors[0].message
    assert attempts == 2  # the first connection, one refused resume: no loop
    with pytest.raises(ServiceError):
        await session.prompt("", reason="cadence")
    await session.close()


@pytest.mark.slow  # ~6 s: a slow emulator, measured memory
async def test_slow_emulator_drops_frames_with_bounded_memory(live_emulator) -> None:
    # Big (noisy, ~390 KB) frames at 20 fps, under the 30 fps cap: a fast server takes
    # them all; one that reads a message every 0.2 s fills the socket buffers, sends
    # block, and the newest frame wins while the older waiting one is dropped.
    rng = np.random.default_rng(7)
    frames = [sampled_frame(rng.integers(0, 255, (768, 768, 3), dtype=np.uint8), 0.0) for _ in range(2)]
    offered = 60
    # The emulator shares our process: keep its own records small so tracemalloc sees the client.
    knobs = EmulatorKnobs(api_keys=(API_KEY,), read_delay=0.2, max_queue=1, record_limit=4, frames_per_turn=1)
    async with live_emulator(knobs) as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, max_fps=30.0)).open(session_settings())
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(offered):
            await session.send_frame(frames[i % 2])
            await asyncio.sleep(0.05)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        counters = session.counters()
        await session.close()
    pending = offered - counters.frames_sent - counters.frames_dropped
    # Every frame is accounted for: sent, dropped (counted), or at most one on the wire and one waiting.
    assert 0 <= pending <= 2
    assert counters.frames_dropped >= offered // 4, counters
    # Queued, 60 frames would hold ~23 MB of JPEG plus base64; the slot holds one.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


async def test_stalled_emulator_is_detected_and_the_session_resumes(live_emulator) -> None:
    knobs = EmulatorKnobs(api_keys=(API_KEY,), faults=(Fault(kind="stall", at=0.1, connections=(1,)),))
    async with live_emulator(knobs) as emu:
        settings = fast_settings(emu.url, timeouts=LiveTimeouts(connect=3, setup=3, response=0.8, close=0.3,
                                                                 ping_interval=None, close_flush=5))
        session = await GeminiLiveBackend(settings).open(session_settings())
        events = LiveEvents(session)
        await session.send_frame(sampled_frame(scene("green"), 0.0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await session.prompt("", reason="cadence")
        await events.until(lambda: bool(events.finals()), within=10)
        took = time.monotonic() - started
        await session.close()
        await events.finish()
    reasons = [c.reason for c in events.payloads(BackendChanged)]
    assert reasons and reasons[0].startswith("stalled"), reasons
    assert took < 4.0
    assert "green" in events.finals()[0].text or "pictures" in events.finals()[0].text


async def test_tcp_drop_reconnects_and_quota_close_backs_off(live_emulator) -> None:
    knobs = EmulatorKnobs(api_keys=(API_KEY,), faults=(Fault(kind="drop", at=0.2, connections=(1,)),
                                                       Fault(kind="quota", at=0.2, connections=(2,))))
    async with live_emulator(knobs) as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url)).open(session_settings())
        events = LiveEvents(session)
        await events.until(lambda: len(events.payloads(BackendChanged)) >= 2, within=10)
        await session.close()
        await events.finish()
    reasons = [c.reason for c in events.payloads(BackendChanged)]
    assert reasons[0] == "1006 connection lost"
    assert reasons[1].startswith("1011 You exceeded your current quota")


@pytest.mark.slow  # ~6 s: 100 frames at a paced rate
async def test_frame_to_wire_latency(live_emulator) -> None:
    frames = [sampled_frame(scene(kind), 0.0) for kind in ("red", "bright")]
    async with live_emulator() as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, max_fps=20.0)).open(session_settings())
        for i in range(100):
            await session.send_frame(frames[i % 2])
            await asyncio.sleep(0.06)  # below the cap: no frame waits for the rate limit
        await session.close()
    latencies = [x * 1000 for x in session.frame_latencies]
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    print(f"\nframe-to-wire latency over loopback: n={len(latencies)} p50={p50:.2f} ms p99={p99:.2f} ms "
          f"(JPEG {len(frames[1].jpeg)} bytes)")
    assert len(latencies) == 100 and session.counters().frames_dropped == 0
    assert p99 < 50


async def test_api_key_never_in_logs_or_events(live_emulator, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    knobs = EmulatorKnobs(api_keys=(API_KEY,), faults=(Fault(kind="close1011", at=0.2, connections=(1,)),))
    async with live_emulator(knobs) as emu:
        settings = fast_settings(emu.url)
        session = await GeminiLiveBackend(settings).open(session_settings())
        events = LiveEvents(session)
        await session.send_frame(sampled_frame(scene("red"), 0.0))
        await events.until(lambda: bool(events.payloads(BackendChanged)))
        await session.prompt("", reason="cadence")
        await events.until(lambda: bool(events.finals()))
        await session.close()
        await events.finish()
    assert "x-goog-api-key" in caplog.text.lower()  # websockets did log the header line...
    assert API_KEY not in caplog.text  # ...with its value redacted
    assert all(API_KEY not in repr(e) for e in events.events)
    assert API_KEY not in repr(settings) and API_KEY not in repr(GeminiLiveBackend(settings))


async def test_frames_never_exceed_the_fps_cap(live_emulator) -> None:
    frame = sampled_frame(scene("red"), 0.0)
    async with live_emulator() as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, max_fps=5.0)).open(session_settings())
        started = time.monotonic()
        for _ in range(100):
            await session.send_frame(frame)
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        counters = session.counters()
        await session.close()
    assert counters.frames_sent <= elapsed * 5.0 + 2
    assert counters.frames_dropped >= 100 - counters.frames_sent - 1


async def test_server_gone_for_good_gives_up_after_bounded_attempts(live_emulator) -> None:
    async with live_emulator() as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url)).open(session_settings())
        events = LiveEvents(session)
    # The emulator shut down with the session open: reconnects are refused.
    await events.finish()
    errors = events.payloads(ErrorEvent)
    assert len(errors) == 1 and errors[0].retryable and "gave up after 4" in errors[0].message
    assert session.connection_attempts <= 1 + 4  # the lost connection counts as the first failure
    with pytest.raises(BackendError):
        await session.send_frame(sampled_frame(scene("red"), 0.0))
    await session.close()


async def test_cancelled_consumer_and_close_mid_turn_are_clean(live_emulator) -> None:
    async with live_emulator(EmulatorKnobs(api_keys=(API_KEY,), speech_pace=0.2)) as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url)).open(session_settings())
        consumer = LiveEvents(session)
        await session.send_frame(sampled_frame(scene("green"), 0.0))
        await session.prompt("", reason="cadence")
        await consumer.until(lambda: bool(consumer.payloads(Commentary)))
        consumer.task.cancel()  # the consumer goes away mid-turn
        with pytest.raises(asyncio.CancelledError):
            await consumer.task
        started = time.monotonic()
        await session.close()  # waits for the turn (bounded), then closes
        assert time.monotonic() - started < 8
    assert session._driver.supervisor is not None and session._driver.supervisor.done()
