"""3.8 semantics against the emulator's per-model profiles (real WebSocket, real JPEGs, real gRPC):
interactionStatus (one final commentary per turn), NON_BLOCKING declarations with SILENT answers,
3.1's BLOCKING-only calls, extended thinking's thinkingConfig, per-session speech settings and tools."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import grpc
import pytest
from helpers.clips import make_clip
from helpers.frames import sampled_frame
from helpers.live import API_KEY, LiveEvents, fast_settings, scene, session_settings
from helpers.server import serve
from helpers.timing import scaled
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from vision_stream.backends.factory import BackendOptions
from vision_stream.backends.gemini_live import GeminiLiveBackend, capabilities_for
from vision_stream.backends.gemini_live.builders import SetupParams
from vision_stream.backends.gemini_live.protocol import LiveProtocol, TurnEnded
from vision_stream.config import Limits, SamplingPolicy, SessionSettings
from vision_stream.events import Commentary, ErrorEvent
from vision_stream.redact import Secret
from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig
from vision_stream.session_factory import open_session
from vision_stream.v1 import vision_stream_pb2 as pb

pytestmark = pytest.mark.timeout(60)

PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def _contents(emu) -> list[dict]:
    return [json.loads(text).get("serverContent", {}) for text in emu.sent]


async def test_38_replay_ends_each_turn_once_and_answers_report_event_silently(live_emulator, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cut.mp4", seconds=4.0, fps=10, cut_at=2.0)
    async with live_emulator() as emu:
        options = BackendOptions(api_key=Secret(API_KEY), live_url=emu.url, live_model="gemini-3.8-live")
        session = await open_session(
            str(clip), settings=SessionSettings(session_id="r38", commentary_interval=1.0), backend="live",
            options=options, sampling=SamplingPolicy(fps=2), limits=Limits(), paced=False, lossless=True)
        await asyncio.wait_for(session.run(), scaled(30))
        setup = emu.client_messages("setup")[0]["setup"]
        responses = [r for m in emu.client_messages("toolResponse") for r in m["toolResponse"]["functionResponses"]]
        contents = _contents(emu)
        answers = [a for s in emu.sessions.values() for a in s.answers]

    finals = [e.payload for e in session.log.snapshot() if isinstance(e.payload, Commentary) and e.payload.final]
    # The emulator split answers in two (turnComplete IN_PROGRESS, then IDLE) ...
    in_progress = [c for c in contents if c.get("interactionStatus") == "IN_PROGRESS"]
    idle = [c for c in contents if c.get("interactionStatus") == "IDLE"]
    assert in_progress and all(c.get("turnComplete") for c in in_progress + idle)
    # ... and each turn still ended once, with the whole answer (both chunks).
    assert finals and max(Counter(f.turn_id for f in finals).values()) == 1
    assert len(finals) == len(idle) == len(answers)
    assert [f.text for f in finals] == [a.strip() for a in answers]
    # report_event declared NON_BLOCKING, its answers SILENT.
    declarations = setup["tools"][0]["functionDeclarations"]
    assert declarations[0]["name"] == "report_event"
    assert all(d["behavior"] == "NON_BLOCKING" for d in declarations)
    assert responses and all(r["name"] == "report_event" and r["scheduling"] == "SILENT" for r in responses)


async def _scene_cut_turn(session, events: LiveEvents) -> None:
    """Red frames, then bright ones, then a prompt: the emulator calls report_event for the cut."""
    for index in range(6):
        await session.send_frame(sampled_frame(scene("red" if index < 3 else "bright"), index * 0.5, index=index))
        await asyncio.sleep(0.12)
    await session.prompt("", reason="scene", media_time=3.0)
    await events.until(lambda: len(events.finals()) >= 1)


async def test_31_declares_blocking_calls_and_answers_without_scheduling(live_emulator) -> None:
    async with live_emulator() as emu:
        backend = GeminiLiveBackend(fast_settings(emu.url, model="gemini-3.1-flash-live-preview"))
        session = await backend.open(session_settings())
        events = LiveEvents(session)
        await _scene_cut_turn(session, events)
        await session.close()
        await events.finish()
        setup = emu.client_messages("setup")[0]["setup"]
        responses = [r for m in emu.client_messages("toolResponse") for r in m["toolResponse"]["functionResponses"]]
        contents = _contents(emu)
        closes = [c.close_code for c in emu.connections]

    assert setup["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "LOW"}
    assert all("behavior" not in d for d in setup["tools"][0]["functionDeclarations"])
    assert responses and all("scheduling" not in r for r in responses)
    assert not any("interactionStatus" in c for c in contents)  # older models: turnComplete ends the turn
    assert len(events.finals()) == 1 and closes == [None]  # no 1007 from the 3.1 profile


async def test_extended_thinking_sends_thinking_config_and_starts(live_emulator) -> None:
    async with live_emulator() as emu:
        backend = GeminiLiveBackend(fast_settings(emu.url, model="gemini-3.8-live-extended-thinking"))
        session = await backend.open(session_settings())
        events = LiveEvents(session)
        await _scene_cut_turn(session, events)
        await session.close()
        await events.finish()
        setup = emu.client_messages("setup")[0]["setup"]
        # Without thinkingConfig the same model refuses to start (the emulator's 3.8 profile).
        bare = {"setup": {"model": "models/gemini-3.8-live-extended-thinking",
                          "generationConfig": {"responseModalities": ["AUDIO"]}}}
        async with connect(emu.url + PATH, additional_headers={"x-goog-api-key": API_KEY}, proxy=None) as ws:
            await ws.send(json.dumps(bare))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), scaled(5))

    assert setup["generationConfig"]["thinkingConfig"] == {"includeThoughts": False}
    assert events.finals() and closed.value.rcvd is not None and closed.value.rcvd.code == 1007


async def test_voice_language_resolution_and_google_search_reach_the_setup(live_emulator) -> None:
    async with live_emulator() as emu:
        backend = GeminiLiveBackend(fast_settings(emu.url))
        settings = session_settings(voice="kore", language="de-de", media_resolution="medium",
                                    tools=("google_search",))
        session = await backend.open(settings)
        events = LiveEvents(session)
        await _scene_cut_turn(session, events)
        await session.close()
        await events.finish()
        setup = emu.client_messages("setup")[0]["setup"]
        usage = [json.loads(t)["usageMetadata"] for t in emu.sent if "usageMetadata" in json.loads(t)]

    generation = setup["generationConfig"]
    assert generation["speechConfig"] == {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
                                          "languageCode": "de-DE"}
    assert generation["mediaResolution"] == "MEDIA_RESOLUTION_MEDIUM"
    assert {"googleSearch": {}} in setup["tools"]
    assert "de-DE" in setup["systemInstruction"]["parts"][0]["text"]  # still a prompt line too
    assert usage[0]["promptTokenCount"] >= 6 * 256  # the emulator billed MEDIUM frames


async def test_code_execution_is_refused_with_invalid_argument_naming_the_model(live_emulator, media_root) -> None:
    async with live_emulator() as emu:
        backends = BackendOptions(api_key=Secret(API_KEY), live_url=emu.url, live_model="gemini-3.8-live")
        config = ServiceConfig(access=SourceAccess(media_root=media_root), backends=backends)
        async for served in serve(config, media_root):
            refused = []
            for tools, voice in ((["code_execution"], ""), ([], "Nobody")):
                request = pb.WatchRequest(source="sample.mp4", fast=True, config=pb.SessionConfig(
                    backend="live", tools=tools, voice=voice))
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    async for _ in served.stub.Watch(request, timeout=scaled(10)):
                        pass
                refused.append(failed.value)
            unknown = pb.WatchRequest(source="sample.mp4", config=pb.SessionConfig(backend="live", tools=["ftp"]))
            with pytest.raises(grpc.aio.AioRpcError) as bad_name:
                async for _ in served.stub.Watch(unknown, timeout=scaled(10)):
                    pass
        connections = len(emu.connections)

    for error in refused:
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "gemini-3.8-live" in error.details()
    assert "code_execution" in refused[0].details() and "Nobody" in refused[1].details()
    assert bad_name.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "ftp" in bad_name.value.details()
    assert connections == 0  # refused before any connection to the model


IN_PROGRESS = json.dumps({"serverContent": {"turnComplete": True, "interactionStatus": "IN_PROGRESS"}})


def _protocol(model: str = "gemini-3.8-live") -> LiveProtocol:
    protocol = LiveProtocol(SetupParams(model=f"models/{model}"), capabilities_for(model))
    protocol.start_connection()
    protocol.receive(json.dumps({"setupComplete": {}}))
    return protocol


def test_in_progress_keeps_the_turn_open_until_idle() -> None:
    protocol = _protocol()
    protocol.send_prompt("What happens?")
    events = protocol.receive(json.dumps({"serverContent": {"outputTranscription": {"text": "A red car"}}}))
    events += protocol.receive(IN_PROGRESS)
    assert protocol.turn_in_progress and not any(isinstance(e, TurnEnded) for e in events)
    events += protocol.receive(json.dumps({"serverContent": {"outputTranscription": {"text": " stops."}}}))
    events += protocol.receive(json.dumps({"serverContent": {"turnComplete": True, "interactionStatus": "IDLE"}}))
    finals = [e for e in events if isinstance(e, Commentary) and e.final]
    assert [f.text for f in finals] == ["A red car stops."] and not protocol.turn_in_progress
    assert [e for e in events if isinstance(e, TurnEnded)] == [TurnEnded("t1", prompted=True)]


def test_waiting_for_input_ends_an_in_progress_turn_and_a_cut_chunk_is_interrupted() -> None:
    protocol = _protocol()
    protocol.send_prompt("What happens?")
    protocol.receive(json.dumps({"serverContent": {"outputTranscription": {"text": "Half"},
                                                   "generationComplete": True}}))
    protocol.receive(IN_PROGRESS)
    loss = protocol.connection_lost()  # mid-turn: the model was still working
    assert loss.unanswered_prompt == "What happens?"
    assert [e.interrupted for e in loss.events if isinstance(e, TurnEnded)] == [True]
    protocol = _protocol()
    protocol.send_prompt("Anything?")
    events = protocol.receive(json.dumps({"serverContent": {
        "turnComplete": True, "interactionStatus": "IN_PROGRESS", "waitingForInput": True}}))
    assert any(isinstance(e, TurnEnded) for e in events) and not protocol.turn_in_progress


@pytest.mark.parametrize(("reason", "code"), [("MALFORMED_FUNCTION_CALL", "malformed_function_call"),
                                              ("RESPONSE_REJECTED", "blocked"), ("NEED_MORE_INPUT", None)])
def test_turn_complete_reason_is_reported_when_it_is_a_failure(reason: str, code: str | None) -> None:
    protocol = _protocol()
    protocol.send_prompt("What happens?")
    events = protocol.receive(json.dumps({"serverContent": {"turnComplete": True, "interactionStatus": "IDLE",
                                                            "turnCompleteReason": reason}}))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    if code is None:
        assert errors == []
    else:
        assert [(e.code, e.retryable) for e in errors] == [(code, True)] and reason in errors[0].message
