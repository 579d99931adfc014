"""The recorded real sessions: our parser understands every server message, and the
client messages we build have the shape of the recorded ones."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.live import read_vector, validate_client_json, validate_server_json

from vision_stream.backends.gemini_live import builders
from vision_stream.backends.gemini_live.messages import ServerMessage, parse_server_message
from vision_stream.backends.gemini_live.models import capabilities_for
from vision_stream.backends.gemini_live.protocol import LiveProtocol, ToolCallRequested
from vision_stream.events import Commentary


def _vectors(folder: Path) -> dict[str, list[tuple[str, bytes]]]:
    files = sorted(folder.glob("*.websocket.log"))
    assert files, "no recordings found"
    return {f.name.removeprefix("live_ML_Dev_").removesuffix(".websocket.log"): read_vector(f) for f in files}


def _shape(value: Any) -> Any:
    """The structure of a JSON value: keys and types, not contents."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


def test_every_server_message_parses(live_vectors: Path) -> None:
    count = 0
    for name, entries in _vectors(live_vectors).items():
        for direction, body in entries:
            if direction != "<":
                continue
            assert body.startswith(b"{\n"), f"{name}: server JSON is pretty-printed"
            message = parse_server_message(body)
            assert isinstance(message, ServerMessage)
            assert message.unknown_keys == ()
            raw = json.loads(body)
            assert (message.setup_complete is not None) == ("setupComplete" in raw)
            assert (message.server_content is not None) == ("serverContent" in raw)
            assert (message.tool_call is not None) == ("toolCall" in raw)
            assert (message.usage_metadata is not None) == ("usageMetadata" in raw)
            validate_server_json(body)
            count += 1
    assert count >= 20


def test_typed_contents_match_the_recordings(live_vectors: Path) -> None:
    vectors = _vectors(live_vectors)
    # text parts
    text_input = [parse_server_message(b) for d, b in vectors["should_reply_to_realtime_text_input"] if d == "<"]
    assert [p.text for m in text_input if m.server_content for p in m.server_content.parts] == [
        "Yes, I'",
        "m here! How can I help you today?",
    ]
    # several top-level keys in one message, usage counts
    content_dict = [parse_server_message(b)
                    for d, b in vectors["should_send_content_dict_in_async_session"] if d == "<"]
    last = content_dict[-1]
    assert last.server_content is not None and last.server_content.turn_complete
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.response_token_count) == (515, 31)
    assert content_dict[1].server_content is not None and content_dict[1].server_content.generation_complete
    # function call with id and args; executable code part
    tool = [parse_server_message(b) for d, b in vectors["should_send_tool_response"] if d == "<"]
    calls = [c for m in tool if m.tool_call for c in m.tool_call.function_calls]
    assert calls[0].id == "function-call-5831923424298605773"
    assert calls[0].name == "get_current_weather" and calls[0].args == {"location": "Redmond, WA"}
    assert any(p.executable_code for m in tool if m.server_content for p in m.server_content.parts)
    # output transcription
    transcription = [
        parse_server_message(b)
        for d, b in vectors["should_receive_transcription_in_async_session_with_transcription_enabled"]
        if d == "<"
    ]
    chunks = [m.server_content.output_transcription.text for m in transcription
              if m.server_content and m.server_content.output_transcription]
    assert chunks[0] == "We" and chunks[1].startswith(" could talk")


def test_protocol_turns_recordings_into_commentary(live_vectors: Path) -> None:
    vectors = _vectors(live_vectors)
    for name in ("should_reply_to_realtime_text_input", "should_send_tool_response",
                 "should_receive_transcription_in_async_session_with_transcription_enabled",
                 "handle_activity_start_and_end"):
        protocol = LiveProtocol(builders.SetupParams(model="models/gemini-live-2.5-flash-preview"),
                                capabilities_for("gemini-live-2.5-flash-preview"))
        protocol.start_connection()
        events = []
        for direction, body in vectors[name]:
            if direction == "<":
                events.extend(protocol.receive(body))
        commentary = [e for e in events if isinstance(e, Commentary)]
        calls = [e for e in events if isinstance(e, ToolCallRequested)]
        if name == "should_send_tool_response":
            assert calls and calls[0].detection.function_name == "get_current_weather"
            assert calls[0].detection.call_id == "function-call-5831923424298605773"
            assert json.loads(calls[0].detection.arguments_json) == {"location": "Redmond, WA"}
        else:
            assert commentary, name
            assert all(not c.final for c in commentary)  # recordings end before turnComplete
            assert commentary[-1].text.startswith(("Yes", "We could", "Yeah"))


def _client(vectors: dict[str, list[tuple[str, bytes]]], name: str) -> list[dict[str, Any]]:
    return [json.loads(b) for d, b in vectors[name] if d == ">"]


def test_built_client_messages_have_the_recorded_shape(live_vectors: Path) -> None:
    vectors = _vectors(live_vectors)
    activity = _client(vectors, "handle_activity_start_and_end")
    audio_b64 = activity[2]["realtimeInput"]["audio"]["data"]
    pcm = base64.b64decode(audio_b64)
    recorded_audio = activity[2]
    built_audio = builders.realtime_audio(pcm)
    assert _shape(built_audio) == _shape(recorded_audio)
    assert built_audio["realtimeInput"]["audio"]["data"] == audio_b64
    assert built_audio["realtimeInput"]["audio"]["mimeType"] == "audio/pcm;rate=16000"
    assert builders.activity_start() == activity[1]
    assert builders.activity_end() == activity[3]

    text = _client(vectors, "should_reply_to_realtime_text_input")[1]
    assert builders.realtime_text("Are you there Gemini?") == text

    content = _client(vectors, "should_send_text_in_async_session")[1]
    assert builders.client_content([("user", "Hello what should we talk about?")]) == content

    tool = _client(vectors, "should_send_tool_response_with_function_responses")[1]
    assert builders.tool_response([("function-call-1", "getStatus", {"mood": "happy"})]) == tool

    setup = _client(vectors, "should_receive_transcription_in_async_session_with_transcription_enabled")[0]
    built = builders.setup(builders.SetupParams(
        model="models/gemini-live-2.5-flash-preview", input_transcription=False, resumption=False,
        compression=False,
    ))
    assert built["setup"]["model"] == setup["setup"]["model"]
    assert built["setup"]["outputAudioTranscription"] == setup["setup"]["outputAudioTranscription"] == {}
    for key in built["setup"]:
        # every key we send is one the recordings (or LIVE_API.md) use, in camelCase
        assert key[0].islower() and "_" not in key

    # Our messages never carry the deprecated mediaChunks the old SDK sent.
    media = _client(vectors, "should_respond_to_realtime_media-audio_input")[1]
    assert "mediaChunks" in media["realtimeInput"]
    assert "mediaChunks" not in json.dumps(builders.realtime_audio(pcm))


@pytest.mark.parametrize(
    "message",
    [
        builders.realtime_video(b"\xff\xd8\xff\xd9"),
        builders.realtime_audio(b"\x00\x00" * 160),
        builders.realtime_text("hello"),
        builders.audio_stream_end(),
        builders.activity_start(),
        builders.activity_end(),
        builders.client_content([("user", "hi")]),
        builders.tool_response([("id-1", "report_event", {"result": "ok"})]),
        builders.setup(builders.SetupParams(model="models/gemini-3.8-live", resumption_handle="h1",
                                            media_resolution="MEDIA_RESOLUTION_LOW",
                                            thinking_config={"thinkingBudget": 0}, voice="Puck",
                                            system_instruction="be brief",
                                            function_declarations=[{"name": "f", "description": "d"}],
                                            realtime_input_config={"turnCoverage": "TURN_INCLUDES_ALL_INPUT"},
                                            compression_trigger_tokens=100000)),
    ],
)
def test_every_builder_validates_against_the_sdk_schema(message: dict[str, Any]) -> None:
    text = builders.encode(message)
    assert len(json.loads(text)) == 1
    validate_client_json(text)
