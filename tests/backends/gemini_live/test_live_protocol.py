"""The sans-I/O core with plain data: states, turns, handles, tool calls, goAway."""

from __future__ import annotations

import json

import pytest

from vision_stream.backends.gemini_api import parse_duration
from vision_stream.backends.gemini_live import builders
from vision_stream.backends.gemini_live.messages import parse_server_message
from vision_stream.backends.gemini_live.models import capabilities_for
from vision_stream.backends.gemini_live.protocol import (
    ConnectionState,
    GoAwayReceived,
    HandleUpdated,
    LiveProtocol,
    ToolCallRequested,
    ToolCallsCancelled,
    TurnEnded,
    UsageReported,
)
from vision_stream.errors import LiveStateError, ProtocolError
from vision_stream.events import AudioOut, Commentary, Transcript


def _frame(obj: dict) -> bytes:
    """A server frame the way Google sends it: pretty-printed, binary."""
    return (json.dumps(obj, indent=2) + "\n").encode()


def _active(model: str = "gemini-3.8-live", **kw: object) -> LiveProtocol:
    protocol = LiveProtocol(builders.SetupParams(model=f"models/{model}"), capabilities_for(model), **kw)  # type: ignore[arg-type]
    protocol.start_connection()
    protocol.receive(_frame({"setupComplete": {}}))
    return protocol


def _payloads(events: list) -> list:
    return [e for e in events if isinstance(e, AudioOut | Commentary | Transcript)]


def test_sending_before_setup_complete_raises() -> None:
    protocol = LiveProtocol(builders.SetupParams(model="models/gemini-3.8-live"), capabilities_for("gemini-3.8-live"))
    with pytest.raises(LiveStateError, match="disconnected"):
        protocol.send_video(b"jpeg")
    setup = json.loads(protocol.start_connection())
    assert setup["setup"]["sessionResumption"] == {}  # no handle: omitted, never null
    assert protocol.state is ConnectionState.SETUP_SENT
    with pytest.raises(LiveStateError, match="setup_sent"):
        protocol.send_prompt("hi")
    protocol.receive('{"setupComplete": {}}')  # text frames too
    assert protocol.state is ConnectionState.ACTIVE
    with pytest.raises(LiveStateError):
        protocol.start_connection()


def test_transcription_streams_partial_then_one_final_commentary() -> None:
    protocol = _active()
    json.loads(protocol.send_prompt("describe"))
    events = []
    for chunk in ("A red", " field", " with a box."):
        events += protocol.receive(_frame({"serverContent": {"outputTranscription": {"text": chunk}}}))
        events += protocol.receive(_frame({"serverContent": {"modelTurn": {"parts": [
            {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AAAA"}}]}}}))
    events += protocol.receive(_frame({"serverContent": {"generationComplete": True}}))
    events += protocol.receive(_frame({"serverContent": {"turnComplete": True},
                                       "usageMetadata": {"promptTokenCount": "70", "responseTokenCount": 9,
                                                         "totalTokenCount": 79}}))
    commentary = [p for p in _payloads(events) if isinstance(p, Commentary)]
    assert [c.text for c in commentary if not c.final] == ["A red", "A red field", "A red field with a box."]
    finals = [c for c in commentary if c.final]
    assert len(finals) == 1 and finals[0].text == "A red field with a box." and finals[0].turn_id == "t1"
    assert not any(isinstance(p, AudioOut) for p in _payloads(events))  # want_audio_out off
    assert any(isinstance(e, TurnEnded) and not e.interrupted for e in events)
    assert next(e for e in events if isinstance(e, UsageReported)).prompt_tokens == 70  # int64 as string
    assert protocol.prompt_tokens == 70 and not protocol.turn_in_progress


def test_audio_out_only_when_asked_and_thoughts_are_not_commentary() -> None:
    protocol = _active(want_audio_out=True)
    events = protocol.receive(_frame({"serverContent": {"modelTurn": {"parts": [
        {"text": "thinking...", "thought": True},
        {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "AQID"}}]}}}))
    audio = [p for p in _payloads(events) if isinstance(p, AudioOut)]
    assert audio == [AudioOut(b"\x01\x02\x03", sample_rate=24000, turn_id="t1")]
    assert not [p for p in _payloads(events) if isinstance(p, Commentary)]


def test_interrupted_ends_the_partial_turn_cleanly() -> None:
    protocol = _active()
    protocol.send_prompt("describe")
    protocol.receive(_frame({"serverContent": {"outputTranscription": {"text": "A red"}}}))
    events = protocol.receive(_frame({"serverContent": {"interrupted": True}}))
    final = [p for p in _payloads(events) if isinstance(p, Commentary)]
    assert final == [Commentary("A red", final=True, turn_id="t1", backend="live")]
    assert any(isinstance(e, TurnEnded) and e.interrupted for e in events)
    assert not protocol.turn_in_progress
    protocol.send_prompt("again")  # a new prompt may go


def test_one_prompt_outstanding_at_a_time() -> None:
    protocol = _active()
    protocol.send_prompt("one")
    with pytest.raises(LiveStateError, match="outstanding"):
        protocol.send_prompt("two")


def test_unprompted_turn_gets_its_own_id() -> None:
    protocol = _active()
    events = protocol.receive(_frame({"serverContent": {"outputTranscription": {"text": "Hello!"}}}))
    events += protocol.receive(_frame({"serverContent": {"turnComplete": True}}))
    finals = [p for p in _payloads(events) if isinstance(p, Commentary) and p.final]
    assert finals[0].turn_id == "t1"
    assert next(e for e in events if isinstance(e, TurnEnded)).prompted is False


def test_handles_only_when_resumable_and_newest_goes_into_the_next_setup() -> None:
    protocol = _active()
    assert protocol.receive(_frame({"sessionResumptionUpdate": {}})) == []
    assert protocol.receive(_frame({"sessionResumptionUpdate": {"newHandle": "h-no"}})) == []
    events = protocol.receive(_frame({"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}}))
    events += protocol.receive(_frame({"sessionResumptionUpdate": {"newHandle": "h2", "resumable": True,
                                                                    "lastConsumedClientMessageIndex": "12"}}))
    assert [e.handle for e in events if isinstance(e, HandleUpdated)] == ["h1", "h2"]
    protocol.connection_lost()
    setup = json.loads(protocol.start_connection())
    assert setup["setup"]["sessionResumption"] == {"handle": "h2"}


def test_go_away_drains_and_reports_seconds_left() -> None:
    protocol = _active()
    events = protocol.receive(_frame({"goAway": {"timeLeft": "50s"}, "unknownNewThing": {"x": 1}}))
    assert events == [GoAwayReceived(50.0)]
    assert protocol.state is ConnectionState.DRAINING
    protocol.send_video(b"x")  # the connection still works until closed
    assert parse_duration("0.500s") == 0.5 and parse_duration({"seconds": "2", "nanos": 5e8}) == 2.5
    assert parse_server_message(_frame({"goAway": {}, "futureKey": 1})).unknown_keys == ("futureKey",)


def test_tool_calls_become_detections_and_cancellation_is_honoured() -> None:
    protocol = _active()
    events = protocol.receive(_frame({"toolCall": {"functionCalls": [
        {"id": "c1", "name": "report_event",
         "args": {"label": "scene_cut", "description": "cut", "severity": "HIGH", "confidence": 1.7}},
        {"id": "c2", "name": "open_door", "args": {"door": 3}}]}}))
    calls = [e for e in events if isinstance(e, ToolCallRequested)]
    first, second = calls[0].detection, calls[1].detection
    assert (first.label, first.severity, first.confidence, first.call_id) == ("scene_cut", "high", 1.0, "c1")
    assert (second.label, second.function_name, json.loads(second.arguments_json)) == ("open_door", "open_door",
                                                                                       {"door": 3})
    assert protocol.pending_tool_calls == {"c1": "report_event", "c2": "open_door"}
    response = json.loads(protocol.send_tool_response("c1", "report_event", {"result": "ok"}) or "{}")
    assert response["toolResponse"]["functionResponses"][0]["id"] == "c1"
    assert protocol.receive(_frame({"toolCallCancellation": {"ids": ["c2"]}})) == [ToolCallsCancelled(("c2",))]
    assert protocol.send_tool_response("c2", "open_door", {}) is None  # cancelled: not answered


def test_connection_loss_mid_turn_returns_the_prompt_to_send_again() -> None:
    protocol = _active()
    protocol.send_prompt("describe")
    protocol.receive(_frame({"serverContent": {"outputTranscription": {"text": "Half"}}}))
    loss = protocol.connection_lost()
    assert loss.unanswered_prompt == "describe"
    assert [p.text for p in _payloads(list(loss.events)) if isinstance(p, Commentary) and p.final] == ["Half"]
    assert protocol.state is ConnectionState.DISCONNECTED and not protocol.turn_in_progress
    # after generationComplete the answer was whole: nothing to resend
    protocol.start_connection()
    protocol.receive(_frame({"setupComplete": {}}))
    protocol.send_prompt("describe")
    protocol.receive(_frame({"serverContent": {"outputTranscription": {"text": "Whole."}}}))
    protocol.receive(_frame({"serverContent": {"generationComplete": True}}))
    assert protocol.connection_lost().unanswered_prompt is None


def test_input_transcription_becomes_transcripts() -> None:
    protocol = _active()
    events = protocol.receive(_frame({"serverContent": {"inputTranscription": {"text": "hello"}}}))
    events += protocol.receive(_frame({"serverContent": {"inputTranscription": {"text": " there", "finished": True}}}))
    transcripts = [p for p in _payloads(events) if isinstance(p, Transcript)]
    assert transcripts == [Transcript("hello", "input", False), Transcript("hello there", "input", True)]


def test_client_content_refused_mid_session_where_the_model_refuses_it() -> None:
    strict = _active("gemini-3.1-flash-live-preview")
    strict.send_client_content([("user", "first")])  # before any realtime input: fine
    strict.send_audio(b"\x00\x00")
    with pytest.raises(LiveStateError, match=r"realtimeInput\.text"):
        strict.send_client_content([("user", "hi")])
    lenient = _active("gemini-3.8-live")
    lenient.send_audio(b"\x00\x00")
    lenient.send_client_content([("user", "hi")])


def test_malformed_frames_are_protocol_errors() -> None:
    protocol = _active()
    with pytest.raises(ProtocolError):
        protocol.receive(b"not json")
    with pytest.raises(ProtocolError):
        protocol.receive(b"[1, 2]")
    with pytest.raises(ProtocolError):
        protocol.receive(_frame({"serverContent": "nope"}))
