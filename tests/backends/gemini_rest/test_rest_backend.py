"""The REST backend against the loopback REST emulator: real HTTP, real SSE, real quota behaviour."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import pytest
from google.genai import types
from helpers.frames import flat_frame
from helpers.paths import SAMPLES
from helpers.rest import API_KEY

from vision_stream.backends.factory import BackendOptions
from vision_stream.backends.gemini_rest import (
    GeminiRestBackend,
    RestRetryPolicy,
    RestSession,
    RestSettings,
    RestTimeouts,
)
from vision_stream.config import Limits, SamplingPolicy, SessionSettings
from vision_stream.errors import BackendError, ServiceError
from vision_stream.events import BackendEvent, Commentary, ErrorEvent
from vision_stream.redact import Secret
from vision_stream.snapshot import analyze_snapshot
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestFault

FAST_RETRY = RestRetryPolicy(max_attempts=4, base_backoff=0.2, max_backoff=1.0, max_retry_wait=10.0)


def settings_for(emulator: RestEmulator, **overrides: object) -> RestSettings:
    values: dict[str, object] = dict(base_url=emulator.url, api_key=API_KEY, requests_per_minute=6000, burst=10,
                                     retry=FAST_RETRY)
    values.update(overrides)
    return RestSettings(**values)  # type: ignore[arg-type]


async def open_session(emulator: RestEmulator, **overrides: object) -> RestSession:
    backend = GeminiRestBackend(settings_for(emulator, **overrides))
    return await backend.open(SessionSettings(session_id="rest-test", source_description="test pattern",
                                              persona="a terse narrator", language="en-GB"))


async def collect(session: RestSession) -> list[BackendEvent]:
    await session.close()
    return [event async for event in session.events()]


def faults(emulator: RestEmulator, *items: RestFault, **knobs: object) -> None:
    emulator.knobs = replace(emulator.knobs, faults=tuple(items), **knobs)  # type: ignore[arg-type]


async def test_stream_request_has_the_documented_shape(rest_emulator: RestEmulator) -> None:
    session = await open_session(rest_emulator, max_frames=3)
    for i in range(6):
        await session.send_frame(flat_frame(float(i), (40 + 30 * i, 90, 160), index=i))
    await session.prompt("", reason="cadence", media_time=5.0)
    events = await collect(session)

    (request,) = rest_emulator.generate_requests()
    assert request.method == "POST"
    assert request.path == "/v1/models/gemini-flash-latest:streamGenerateContent"
    assert request.query == {"alt": ["sse"]}
    # The key travels in the header only.
    assert request.key_in_header and not request.key_in_query
    body = request.body
    assert set(body) == {"contents", "systemInstruction", "generationConfig"}
    (content,) = body["contents"]
    parts = content["parts"]
    assert content["role"] == "user" and [list(p) for p in parts] == [["inlineData"]] * 3 + [["text"]]
    for part in parts[:3]:
        assert part["inlineData"]["mimeType"] == "image/jpeg"
        assert base64.b64decode(part["inlineData"]["data"])[:2] == b"\xff\xd8"
    assert "5.0 s" in parts[-1]["text"]  # the newest frame is always among them
    assert "a terse narrator" in body["systemInstruction"]["parts"][0]["text"]
    assert body["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_MEDIUM"
    types.Content.model_validate_json(json.dumps(content))

    commentary = [e.payload for e in events if isinstance(e.payload, Commentary)]
    partial = [c for c in commentary if not c.final]
    final = [c for c in commentary if c.final]
    assert len(final) == 1 and final[0].turn_id == "rest-1" and final[0].backend == "rest"
    assert "3 pictures" in final[0].text  # the emulator describes the frames it received
    assert len(partial) >= 2 and all(final[0].text.startswith(p.text) for p in partial)
    assert session.counters().prompt_tokens > 3 * 256


async def test_emulator_responses_validate_against_the_sdk(rest_emulator: RestEmulator) -> None:
    import httpx

    jpeg = (SAMPLES / "still.jpg").read_bytes()
    body = {"contents": [{"role": "user", "parts": [
        {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(jpeg).decode()}}, {"text": "what?"}]}]}
    url = f"{rest_emulator.url}/v1beta/models/gemini-flash-latest"
    async with httpx.AsyncClient(headers={"x-goog-api-key": API_KEY}) as http:
        whole = await http.post(f"{url}:generateContent", json=body)
        streamed = await http.post(f"{url}:streamGenerateContent", params={"alt": "sse"}, json=body)
    reply = types.GenerateContentResponse.model_validate_json(whole.text)
    assert reply.text and "800x600" in reply.text and reply.usage_metadata is not None
    assert streamed.headers["content-type"] == "text/event-stream"
    events = [e for e in streamed.text.split("\r\n\r\n") if e]
    assert len(events) >= 2 and all(e.startswith("data: ") for e in events)
    chunks = [types.GenerateContentResponse.model_validate_json(e[6:]) for e in events]
    assert "".join(c.text or "" for c in chunks) == reply.text
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


async def test_generate_content_without_streaming(rest_emulator: RestEmulator) -> None:
    session = await open_session(rest_emulator, stream=False)
    await session.send_frame(flat_frame(1.0))
    await session.prompt("Is it blue?", reason="client", media_time=1.0)
    events = await collect(session)
    (request,) = rest_emulator.generate_requests()
    assert request.path.endswith(":generateContent") and not request.stream
    assert request.body["contents"][0]["parts"][-1]["text"].startswith("Is it blue?")
    assert [e.payload.final for e in events if isinstance(e.payload, Commentary)] == [True]


async def test_error_inside_the_stream_is_retried_as_one_turn(rest_emulator: RestEmulator) -> None:
    faults(rest_emulator, RestFault(kind="midstream", count=1))
    session = await open_session(rest_emulator)
    await session.send_frame(flat_frame(1.0))
    await session.prompt("", reason="cadence", media_time=1.0)
    events = await collect(session)
    assert [r.fault for r in rest_emulator.generate_requests()] == ["midstream", ""]
    commentary = [e.payload for e in events if isinstance(e.payload, Commentary)]
    assert {c.turn_id for c in commentary} == {"rest-1"}
    assert [c.final for c in commentary].count(True) == 1
    assert not [e for e in events if isinstance(e.payload, ErrorEvent)]
    assert session.counters().retries == 1


async def test_429_retry_delay_is_honoured_by_the_next_request(rest_emulator: RestEmulator) -> None:
    # RetryInfo.retryDelay "2s": no request of this backend may start sooner.
    faults(rest_emulator, RestFault(kind="429", count=1), retry_delay=2.0)
    session = await open_session(rest_emulator)
    await session.send_frame(flat_frame(1.0))
    await session.prompt("", reason="cadence", media_time=1.0)
    events = await collect(session)
    first, second = rest_emulator.generate_requests()
    assert first.status == 429 and second.status == 200
    assert second.arrived - first.arrived >= 2.0
    assert [e.payload.final for e in events if isinstance(e.payload, Commentary)][-1] is True


async def test_a_429_hold_applies_to_every_session_of_the_backend(rest_emulator: RestEmulator) -> None:
    faults(rest_emulator, RestFault(kind="429", count=1), retry_delay=1.0, retry_after_header=True)
    backend = GeminiRestBackend(settings_for(rest_emulator))
    a = await backend.open(SessionSettings(session_id="a"))
    b = await backend.open(SessionSettings(session_id="b"))
    await a.send_frame(flat_frame(1.0))
    await b.send_frame(flat_frame(1.0, (200, 10, 10)))
    await a.prompt("", reason="cadence")
    await asyncio.sleep(0.2)  # a's first request is answered 429 before b asks
    await b.prompt("", reason="cadence")
    await a.close()
    await b.close()
    requests = rest_emulator.generate_requests()
    assert [r.status for r in requests] == [429, 200, 200]
    assert min(r.arrived for r in requests[1:]) - requests[0].arrived >= 1.0


async def test_429_storm_request_count_stays_bounded(rest_emulator: RestEmulator) -> None:
    """Every request answers 429 with retryDelay 1s: the session waits, never hammers, then gives up."""
    faults(rest_emulator, RestFault(kind="429"), retry_delay=1.0)
    session = await open_session(rest_emulator, retry=replace(FAST_RETRY, max_attempts=3))
    await session.send_frame(flat_frame(1.0))
    started = time.monotonic()
    for i in range(20):  # a prompt storm: coalesced, not queued
        await session.prompt("", reason="cadence", media_time=float(i))
    events = await collect(session)
    elapsed = time.monotonic() - started
    requests = rest_emulator.generate_requests()
    # 3 attempts for the first prompt (2 honoured 1 s waits), then the session failed.
    assert len(requests) == 3, [r.status for r in requests]
    assert requests[2].arrived - requests[0].arrived >= 2.0 and elapsed < 5
    errors = [e.payload for e in events if isinstance(e.payload, ErrorEvent)]
    assert errors[-1].code == "quota" and errors[-1].retryable
    assert session.counters().prompts_coalesced == 19
    with pytest.raises(BackendError):
        await session.send_frame(flat_frame(2.0))


async def test_per_day_quota_fails_at_once_and_refuses_new_sessions(rest_emulator: RestEmulator) -> None:
    faults(rest_emulator, RestFault(kind="perday"), retry_delay=1.0)
    backend = GeminiRestBackend(settings_for(rest_emulator))
    session = await backend.open(SessionSettings(session_id="day"))
    await session.send_frame(flat_frame(1.0))
    await session.prompt("", reason="cadence")
    events = [e async for e in session.events()]  # ends by itself: the session failed
    await session.close()
    assert len(rest_emulator.generate_requests()) == 1  # no hammering
    (error,) = [e.payload for e in events if isinstance(e.payload, ErrorEvent)]
    assert error.code == "quota_per_day" and "PerDay" in error.message
    with pytest.raises(ServiceError) as refused:
        await backend.open(SessionSettings(session_id="day2"))
    assert refused.value.code == "quota_per_day"
    assert len(rest_emulator.generate_requests()) == 1


async def test_5xx_backs_off_with_growing_delays(rest_emulator: RestEmulator) -> None:
    faults(rest_emulator, RestFault(kind="503", count=3))
    policy = RestRetryPolicy(max_attempts=4, base_backoff=0.2, max_backoff=5.0, jitter=0.0)
    session = await open_session(rest_emulator, retry=policy)
    await session.send_frame(flat_frame(1.0))
    await session.prompt("", reason="cadence")
    events = await collect(session)
    times = [r.arrived for r in rest_emulator.generate_requests()]
    assert [r.status for r in rest_emulator.generate_requests()] == [503, 503, 503, 200]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8
    assert any(isinstance(e.payload, Commentary) and e.payload.final for e in events)


async def test_bad_key_is_permanent_with_the_servers_message(rest_emulator: RestEmulator,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = GeminiRestBackend(replace(settings_for(rest_emulator), api_key="AIzaWRONG-key-value"))
    session = await backend.open(SessionSettings(session_id="k"))
    await session.send_frame(flat_frame(1.0))
    await session.prompt("", reason="cadence")
    events = [e async for e in session.events()]
    await session.close()
    assert len(rest_emulator.generate_requests()) == 1
    (error,) = [e.payload for e in events if isinstance(e.payload, ErrorEvent)]
    assert error.code == "api_key_invalid" and not error.retryable
    assert "API key not valid. Please pass a valid API key." in error.message
    with pytest.raises(ServiceError, match="API key not valid"):
        await backend.open(SessionSettings(session_id="k2"))
    for text in [r.getMessage() for r in caplog.records] + [error.message, repr(backend)]:
        assert "AIzaWRONG-key-value" not in text
    assert not [r for r in rest_emulator.requests if r.key_in_query]


async def test_live_only_model_404_says_which_setting_to_change(rest_emulator: RestEmulator) -> None:
    session = await open_session(rest_emulator, model="gemini-3.8-live")
    await session.send_frame(flat_frame(1.0))
    await session.prompt("", reason="cadence")
    events = [e async for e in session.events()]
    await session.close()
    (error,) = [e.payload for e in events if isinstance(e.payload, ErrorEvent)]
    assert error.code == "model_not_found"
    assert "gemini-3.8-live" in error.message and "--snapshot-model" in error.message


async def test_safety_block_is_an_event_and_the_session_goes_on(rest_emulator: RestEmulator) -> None:
    faults(rest_emulator, RestFault(kind="safety", count=1), RestFault(kind="blocked", count=1))
    session = await open_session(rest_emulator)
    await session.send_frame(flat_frame(1.0))
    for t in (1.0, 2.0, 3.0):
        await session.prompt("", reason="cadence", media_time=t)
        await asyncio.sleep(0.3)
    events = await collect(session)
    errors = [e.payload for e in events if isinstance(e.payload, ErrorEvent)]
    assert [e.code for e in errors] == ["blocked", "blocked"] and all(e.retryable for e in errors)
    assert "finishReason SAFETY" in errors[0].message and "blockReason SAFETY" in errors[1].message
    assert [c.payload.final for c in events if isinstance(c.payload, Commentary)][-1] is True


async def test_stalled_stream_times_out_and_is_retried(rest_emulator: RestEmulator) -> None:
    faults(rest_emulator, RestFault(kind="stall", count=1))
    session = await open_session(rest_emulator, timeouts=RestTimeouts(read=0.5, close=10))
    await session.send_frame(flat_frame(1.0))
    await session.prompt("", reason="cadence")
    events = await collect(session)
    assert [r.fault for r in rest_emulator.generate_requests()] == ["stall", ""]
    assert any(isinstance(e.payload, Commentary) and e.payload.final for e in events)


async def test_snapshot_uses_rest_when_a_key_is_set(rest_emulator: RestEmulator,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    options = BackendOptions(api_key=Secret(API_KEY), rest_url=rest_emulator.url, rest_requests_per_minute=600)
    data = (SAMPLES / "still.jpg").read_bytes()
    result = await analyze_snapshot(data, prompt="What is this?", options=options, sampling=SamplingPolicy(),
                                    limits=Limits())
    assert result.backend == "rest" and result.model == "gemini-flash-latest" and "768x576" in result.text
    (request,) = rest_emulator.generate_requests()
    assert request.path.endswith(":generateContent")
    assert request.body["contents"][0]["parts"][-1] == {"text": "What is this?"}
    with pytest.raises(ServiceError) as not_found:
        await analyze_snapshot(data, model="gemini-3.1-flash-live-preview", options=options,
                               sampling=SamplingPolicy(), limits=Limits())
    assert not_found.value.status == 404 and "--snapshot-model" in not_found.value.message
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


def test_settings_repr_hides_the_key(tmp_path: Path) -> None:
    settings = RestSettings(api_key=API_KEY)
    assert API_KEY not in repr(settings) and API_KEY not in repr(GeminiRestBackend(settings))


async def test_candidates_beyond_the_window_are_counted_as_dropped(rest_emulator: RestEmulator) -> None:
    """Only the newest ``candidate_frames`` wait for a request; older ones fall out, counted."""
    session = await open_session(rest_emulator, candidate_frames=3, max_frames=2)
    for i in range(5):
        await session.send_frame(flat_frame(0.5 * i, (40 * i, 100, 200), index=i, square_at=30 * i))
    await session.prompt("", reason="cadence")
    events = await collect(session)
    counters = session.counters()
    assert counters.frames_dropped == 2 and counters.frames_sent == 2 and counters.requests == 1
    body = rest_emulator.generate_requests()[0].body
    assert sum("inlineData" in part for part in body["contents"][0]["parts"]) == 2
    assert any(isinstance(e.payload, Commentary) and e.payload.final for e in events)
