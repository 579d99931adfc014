"""The emulator judged as Google's server, through a raw WebSocket client."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest
from helpers.frames import sampled_frame
from helpers.live import API_KEY, scene, validate_server_json
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from vision_stream.testing import EmulatorKnobs, LiveEmulator
from vision_stream.testing.live_validation import MAX_REASON_BYTES

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
SETUP = {"setup": {"model": "models/gemini-3.8-live", "generationConfig": {"responseModalities": ["AUDIO"]},
                   "outputAudioTranscription": {}, "sessionResumption": {},
                   "contextWindowCompression": {"slidingWindow": {}},
                   "tools": [{"functionDeclarations": [{"name": "report_event", "description": "d"}]}]}}


async def _exchange(emu: LiveEmulator, messages: list[dict[str, Any] | str], *, key: str = API_KEY,
                    wait: float = 1.5, until: str | None = None) -> tuple[list[Any], int | None, str]:
    """Send messages; collect server frames until closed, ``until`` key seen, or ``wait`` s."""
    received: list[Any] = []
    headers = {"x-goog-api-key": key} if key else {}
    async with connect(emu.url + PATH, additional_headers=headers, proxy=None, compression=None) as ws:
        for message in messages:
            await ws.send(message if isinstance(message, str) else json.dumps(message))
        try:
            async with asyncio.timeout(wait):
                while True:
                    frame = await ws.recv()
                    received.append(frame)
                    if until and until in json.loads(frame):
                        break
        except (TimeoutError, ConnectionClosed):
            pass
        rcvd = ws.protocol.close_rcvd  # before our own close, whose echo would be 1000
        await ws.close()
    return received, (rcvd.code if rcvd else None), (rcvd.reason if rcvd else "")


async def test_setup_complete_is_binary_pretty_camel_case() -> None:
    async with LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,))) as emu:
        frames, code, _ = await _exchange(emu, [SETUP], wait=0.5)
    assert code is None
    assert isinstance(frames[0], bytes) and frames[0] == b'{\n  "setupComplete": {}\n}\n'
    update = json.loads(frames[1])["sessionResumptionUpdate"]
    assert update["resumable"] is True and update["newHandle"]
    for frame in frames:
        validate_server_json(frame)


@pytest.mark.parametrize(
    ("messages", "key", "code", "reason"),
    [
        ([SETUP], "wrong-key", 1007, "API key not valid. Please pass a valid API key."),
        ([SETUP], "", 1008, "Method doesn't allow unregistered callers"),
        ([{"setup": {"model": "models/gemini-2.5-flash-live-preview"}}], API_KEY, 1008,
         "models/gemini-2.5-flash-live-preview is not found for API version v1beta, or is not supported for "
         "bidiGenerateContent"),
        ([{"setup": {"model": "models/gemini-3.8-live", "generationConfig": {"responseModalities": ["TEXT"]}}}],
         API_KEY, 1007, "Cannot extract voices from a non-audio request."),
        ([SETUP, {"realtimeInput": {"mediaChunks": [{"mimeType": "audio/pcm", "data": "AAAA"}]}}], API_KEY, 1007,
         "realtime_input.media_chunks is deprecated. Use audio, video, or text instead."),
        ([{"setup": {"model": "models/gemini-3.8-live", "bogusField": 1}}], API_KEY, 1007,
         'Invalid JSON payload received. Unknown name "bogusField"'),
        ([{"realtimeInput": {"text": "hi"}}], API_KEY, 1007, "Request contains an invalid argument."),
        ([SETUP, SETUP], API_KEY, 1007, "Request contains an invalid argument."),
        ([SETUP, {"realtimeInput": {"text": "a"}, "toolResponse": {}}], API_KEY, 1007,
         "Request contains an invalid argument."),
        ([SETUP, {"realtimeInput": {"text": "a", "audioStreamEnd": True}}], API_KEY, 1007,
         "Request contains an invalid argument."),
        ([SETUP, {"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": "***"}}}], API_KEY, 1007,
         "Base64 decoding failed"),
        ([SETUP, {"realtimeInput": {"video": {"mimeType": "image/jpeg",
                                              "data": base64.b64encode(b"not a jpeg").decode()}}}], API_KEY, 1007,
         "Request contains an invalid argument."),
        ([SETUP, {"realtimeInput": {"audio": {"mimeType": "audio/pcm", "data": "AAAA"}}}], API_KEY, 1007,
         "Request contains an invalid argument."),
        ([{"setup": {"model": "models/gemini-3.8-live", "sessionResumption": {"handle": None}}}], API_KEY, 1007,
         "Request contains an invalid argument."),
        ([{"setup": {"model": "models/gemini-3.8-live", "proactivity": {"proactiveAudio": False}}}], API_KEY, 1007,
         "Request contains an invalid argument."),
        ([{"setup": {"model": "models/gemini-3.8-live", "sessionResumption": {"handle": "forged"}}}], API_KEY, 1007,
         "Request contains an invalid argument."),
        (["{not json"], API_KEY, 1007, "Invalid JSON payload received."),
    ],
    ids=["bad-key", "no-key", "unknown-model", "text-modality", "media-chunks", "unknown-field", "setup-not-first",
         "setup-twice", "two-keys", "two-realtime-fields", "bad-base64", "bad-jpeg", "audio-without-rate",
         "null-handle", "proactive-false", "forged-handle", "not-json"],
)
async def test_invalid_input_closes_with_googles_code_and_text(
    messages: list[Any], key: str, code: int, reason: str
) -> None:
    async with LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,))) as emu:
        _, got_code, got_reason = await _exchange(emu, messages, key=key)
    assert got_code == code
    assert reason[:MAX_REASON_BYTES] in got_reason
    assert len(got_reason.encode()) <= MAX_REASON_BYTES


async def test_client_content_mid_session_refused_by_3_1() -> None:
    setup = {"setup": {"model": "models/gemini-3.1-flash-live-preview"}}
    content = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hi"}]}], "turnComplete": True}}
    async with LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,))) as emu:
        _, code, _ = await _exchange(emu, [setup, {"realtimeInput": {"text": "x"}}, content])
        assert code == 1007
        _, code, _ = await _exchange(emu, [{"setup": {"model": "models/gemini-3.8-live"}},
                                           {"realtimeInput": {"text": "x"}}, content], wait=0.5)
        assert code is None


@pytest.mark.parametrize("status", [404, 403])
async def test_refused_upgrade(status: int) -> None:
    async with LiveEmulator(EmulatorKnobs(refuse_status=status)) as emu:
        with pytest.raises(InvalidStatus) as info:
            await _exchange(emu, [SETUP])
    assert info.value.response.status_code == status


async def test_wrong_path_is_404() -> None:
    async with LiveEmulator() as emu:
        with pytest.raises(InvalidStatus) as info:
            async with connect(emu.url + "/ws/nope", proxy=None):
                pass
    assert info.value.response.status_code == 404


async def test_prompt_answer_reflects_frames_with_report_event_and_usage() -> None:
    frames = [sampled_frame(scene("red"), 0.0)] * 3 + [sampled_frame(scene("bright"), 1.0)] * 3
    video = [{"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": base64.b64encode(f.jpeg).decode()}}}
             for f in frames]
    async with LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,))) as emu:
        headers = {"x-goog-api-key": API_KEY}
        async with connect(emu.url + PATH, additional_headers=headers, proxy=None) as ws:
            await ws.send(json.dumps(SETUP))
            for message in [*video, {"realtimeInput": {"text": "What do you see?"}}]:
                await ws.send(json.dumps(message))
            messages = []
            async with asyncio.timeout(5):
                while True:
                    message = json.loads(await ws.recv())
                    messages.append(message)
                    if "toolCall" in message:
                        call = message["toolCall"]["functionCalls"][0]
                        await ws.send(json.dumps({"toolResponse": {"functionResponses": [
                            {"id": call["id"], "name": call["name"], "response": {"result": "ok"}}]}}))
                    content = message.get("serverContent", {})
                    # 3.8: a turnComplete with interactionStatus IN_PROGRESS ends a chunk, not the answer.
                    if content.get("turnComplete") and content.get("interactionStatus") != "IN_PROGRESS":
                        break
        sent = list(emu.sent)
    call = next(m["toolCall"]["functionCalls"][0] for m in messages if "toolCall" in m)
    assert call["name"] == "report_event" and call["args"]["label"] == "scene_cut"
    text = "".join(m["serverContent"]["outputTranscription"]["text"] for m in messages
                   if "outputTranscription" in m.get("serverContent", {}))
    assert "6 pictures" in text and "scene cut" in text and "gray" in text
    audio = [p["inlineData"] for m in messages
             for p in m.get("serverContent", {}).get("modelTurn", {}).get("parts", [])]
    assert audio and audio[0]["mimeType"] == "audio/pcm;rate=24000"
    usage = messages[-1]["usageMetadata"]
    assert usage["promptTokenCount"] >= 6 * 64  # LOW would be 64/frame; default MEDIUM is more
    assert any(m.get("serverContent", {}).get("generationComplete") for m in messages)
    for text in sent:
        validate_server_json(text)


async def test_overlapping_prompt_interrupts_and_speech_is_transcribed() -> None:
    rate = 16000
    t = np.arange(rate) / rate
    loud = (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()
    quiet = np.zeros(rate, "<i2").tobytes()
    audio = [{"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                          "data": base64.b64encode(chunk).decode()}}}
             for chunk in (loud[i:i + 3200] for i in range(0, len(loud), 3200))]
    silence = [{"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                            "data": base64.b64encode(quiet[i:i + 3200]).decode()}}}
               for i in range(0, len(quiet), 3200)]
    knobs = EmulatorKnobs(api_keys=(API_KEY,), speech_pace=0.05)
    async with LiveEmulator(knobs) as emu:
        frames, _, _ = await _exchange(
            emu, [SETUP, *audio, *silence, {"realtimeInput": {"text": "one"}}, {"realtimeInput": {"text": "two"}}],
            wait=4, until="usageMetadata")
    messages = [json.loads(f) for f in frames]
    transcripts = [m["serverContent"]["inputTranscription"] for m in messages
                   if "inputTranscription" in m.get("serverContent", {})]
    assert transcripts and transcripts[0]["text"].startswith("[speech 1.") and transcripts[0]["finished"]
    assert any(m.get("serverContent", {}).get("interrupted") for m in messages)


async def test_session_without_compression_ends_at_its_scaled_limit() -> None:
    setup = {"setup": {"model": "models/gemini-3.8-live", "sessionResumption": {}}}
    jpeg = base64.b64encode(sampled_frame(scene("red"), 0).jpeg).decode()
    pcm = base64.b64encode(bytes(3200)).decode()
    knobs = EmulatorKnobs(api_keys=(API_KEY,)).scaled(0.005)  # 2 min -> 0.6 s
    async with LiveEmulator(knobs) as emu:
        headers = {"x-goog-api-key": API_KEY}
        async with connect(emu.url + PATH, additional_headers=headers, proxy=None) as ws:
            await ws.send(json.dumps(setup))
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(100):
                    await ws.send(json.dumps({"realtimeInput": {"video": {"mimeType": "image/jpeg", "data": jpeg}}}))
                    await ws.send(json.dumps({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000",
                                                                          "data": pcm}}}))
                    await asyncio.sleep(0.02)
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1000
        assert emu.connections[0].close_detail.startswith("session length limit")


def test_knobs_from_cli_strings() -> None:
    knobs = EmulatorKnobs.from_strings(["lifetime=60 notice=5 latency=0.05", "fault=close1011@0.5/2,4",
                                        "fault=drop@1", "refuse=403:2", "key=k1", "key=k2", "max_queue=2"])
    assert knobs.lifetime == 60 and knobs.notice == 5 and knobs.latency == 0.05 and knobs.max_queue == 2
    assert knobs.faults[0].kind == "close1011" and knobs.faults[0].connections == (2, 4)
    assert knobs.faults[1].applies_to(7) and not knobs.faults[0].applies_to(3)
    assert (knobs.refuse_status, knobs.refuse_count, knobs.api_keys) == (403, 2, ("k1", "k2"))
    assert EmulatorKnobs.from_strings(["scale=0.01"]).av_session_limit == pytest.approx(1.2)
    with pytest.raises(ValueError):
        EmulatorKnobs.from_strings(["nonsense=1"])
    with pytest.raises(ValueError):
        EmulatorKnobs.from_strings(["fault=explode@1"])


async def test_serve_emulator_runs_until_cancelled() -> None:
    import socket

    from vision_stream.testing import serve_emulator

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve_emulator("127.0.0.1", port, EmulatorKnobs(api_keys=(API_KEY,))))
    try:
        for _ in range(50):
            try:
                async with connect(f"ws://127.0.0.1:{port}{PATH}", additional_headers={"x-goog-api-key": API_KEY},
                                   proxy=None) as ws:
                    await ws.send(json.dumps(SETUP))
                    assert json.loads(await ws.recv()) == {"setupComplete": {}}
                    break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("emulator did not start")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(
    ("path", "headers", "complete"),
    [
        ("/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent", {"x-goog-api-key": API_KEY},
         True),
        ("/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent", {"x-goog-api-key": API_KEY},
         True),
        # Vertex's v1 is another API: it wants a bearer token, a Gemini key is no credential there.
        ("/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent", {"x-goog-api-key": API_KEY}, False),
        ("/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent", {"Authorization": "Bearer ya29.t"},
         True),
        # The Constrained method takes an ephemeral token, never an API key.
        ("/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContentConstrained",
         {"x-goog-api-key": API_KEY}, False),
    ],
)
async def test_every_version_path_and_its_credential(path: str, headers: dict[str, str], complete: bool) -> None:
    async with LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,))) as emu, \
            connect(emu.url + path, additional_headers=headers, proxy=None) as ws:
        await ws.send(json.dumps({"setup": {"model": "models/gemini-3.8-live"}}))
        try:
            async with asyncio.timeout(1.5):
                first = json.loads(await ws.recv())
        except (TimeoutError, ConnectionClosed):
            first = {}
        rcvd = ws.protocol.close_rcvd
    assert ("setupComplete" in first) is complete
    if not complete:
        assert rcvd is not None and rcvd.code == 1008 and rcvd.reason.startswith("Method doesn't allow unregistered")
