"""The send side of the sans-I/O core: order, rate cap, what survives a lost write,
prompt rules, goAway rotation and stalls. Plain data and made-up times, no sockets."""

from __future__ import annotations

import json

from helpers.frames import sampled_frame
from helpers.live import scene

from vision_stream.backends.gemini_live import builders
from vision_stream.backends.gemini_live.models import capabilities_for
from vision_stream.backends.gemini_live.outbox import PendingPrompt
from vision_stream.backends.gemini_live.protocol import LiveProtocol
from vision_stream.backends.gemini_live.schedule import SendSchedule
from vision_stream.media.types import AudioChunk

SETUP_COMPLETE = json.dumps({"setupComplete": {}})
TURN_COMPLETE = json.dumps({"serverContent": {"outputTranscription": {"text": "A red card."}, "turnComplete": True}})


def _schedule(*, max_fps: float = 2.0, margin: float = 1.0, timeout: float = 5.0) -> SendSchedule:
    protocol = LiveProtocol(builders.SetupParams(model="models/gemini-3.8-live"), capabilities_for("gemini-3.8-live"))
    schedule = SendSchedule(protocol, audio_chunks=4, max_fps=max_fps, go_away_margin=margin,
                            response_timeout=timeout, client_functions=("open_gate",))
    _connect(schedule, 0.0)
    return schedule


def _connect(schedule: SendSchedule, now: float) -> None:
    schedule.protocol.start_connection()
    schedule.receive(SETUP_COMPLETE, now)
    schedule.connected(now)


def _kind(text: str | None) -> str:
    """Which client message a text is (the first key, then the realtimeInput field)."""
    assert text is not None
    obj = json.loads(text)
    (key, body), = obj.items()
    return f"{key}.{next(iter(body))}" if key == "realtimeInput" else key


def _chunk(n: int) -> AudioChunk:
    return AudioChunk(bytes([n]) * 320, media_time=n * 0.01)


def _drain(schedule: SendSchedule, now: float) -> list[str]:
    sent = []
    while (text := schedule.next_outgoing(now)) is not None:
        schedule.sent(now)
        sent.append(_kind(text))
    return sent


def test_order_is_tool_answers_audio_video_stream_end_then_prompt() -> None:
    schedule = _schedule()
    schedule.receive(json.dumps({"toolCall": {"functionCalls": [{"id": "c1", "name": "report_event", "args": {}}]}}),
                     0.1)
    outbox = schedule.outbox
    outbox.prompts.offer(PendingPrompt("What now?", "client"), turn_in_progress=False)
    outbox.put_frame(sampled_frame(scene("red"), 1.0), 0.1)
    outbox.put_audio(_chunk(1))
    outbox.put_audio(_chunk(2))
    outbox.audio_stream_end = True
    assert _drain(schedule, 0.2) == ["toolResponse", "realtimeInput.audio", "realtimeInput.audio",
                                     "realtimeInput.video", "realtimeInput.audioStreamEnd", "realtimeInput.text"]
    assert (schedule.audio_chunks_sent, schedule.frames_sent, schedule.prompts_sent) == (2, 1, 1)
    assert schedule.turn_media_time == 1.0  # the prompt had none: the last frame sent


def test_frames_are_capped_newest_wins_and_the_wait_is_announced() -> None:
    schedule = _schedule(max_fps=2.0)
    outbox = schedule.outbox
    outbox.put_frame(sampled_frame(scene("red"), 0.0), 1.0)
    assert _drain(schedule, 1.0) == ["realtimeInput.video"]
    outbox.put_frame(sampled_frame(scene("green"), 0.1), 1.1)
    outbox.put_frame(sampled_frame(scene("bright"), 0.2), 1.2)  # replaces green, counted
    assert schedule.next_outgoing(1.3) is None and abs(schedule.wait_hint(1.3) - 0.2) < 1e-9  # type: ignore[operator]
    assert _drain(schedule, 1.5) == ["realtimeInput.video"]
    assert outbox.frames_dropped == 1 and schedule.frames_sent == 2 and schedule.wait_hint(1.5) is None


def test_a_lost_write_keeps_audio_and_the_newest_frame_and_asks_the_prompt_again() -> None:
    schedule = _schedule()
    outbox = schedule.outbox
    outbox.put_audio(_chunk(1))
    assert _kind(schedule.next_outgoing(0.5)) == "realtimeInput.audio"
    schedule.connection_lost()  # the write never completed
    assert len(outbox.audio) == 1 and schedule.audio_chunks_sent == 0
    _connect(schedule, 1.0)
    assert _drain(schedule, 1.0) == ["realtimeInput.audio"]
    outbox.put_frame(sampled_frame(scene("red"), 2.0), 2.0)
    assert _kind(schedule.next_outgoing(2.0)) == "realtimeInput.video"
    schedule.connection_lost()
    assert outbox.frame is not None and outbox.frame.frame.media_time == 2.0
    _connect(schedule, 3.0)
    outbox.prompts.offer(PendingPrompt("Describe", "cadence", 2.5), turn_in_progress=False)
    assert _drain(schedule, 3.0) == ["realtimeInput.video", "realtimeInput.text"]
    schedule.connection_lost()  # cut before the answer: the prompt goes again first
    _connect(schedule, 4.0)
    assert _drain(schedule, 4.0) == ["realtimeInput.text"] and schedule.turn_media_time == 2.5


def test_prompts_wait_for_the_turn_and_never_go_while_draining() -> None:
    schedule = _schedule()
    prompts = schedule.outbox.prompts
    prompts.offer(PendingPrompt("first", "cadence"), turn_in_progress=False)
    assert _drain(schedule, 0.1) == ["realtimeInput.text"]
    assert not prompts.offer(PendingPrompt("tick", "cadence"), turn_in_progress=True)  # coalesced
    prompts.offer(PendingPrompt("What is that?", "client"), turn_in_progress=True)
    assert _drain(schedule, 0.2) == []  # a turn is in progress
    schedule.receive(TURN_COMPLETE, 0.3)
    schedule.receive(json.dumps({"goAway": {"timeLeft": "10s"}}), 0.4)
    assert _drain(schedule, 0.5) == []  # draining: the client prompt waits for the next connection
    assert prompts.pending and prompts.coalesced == 1


def test_report_event_is_answered_unknown_functions_refused_client_functions_left_to_the_client() -> None:
    schedule = _schedule()
    calls = [{"id": "a", "name": "report_event", "args": {"label": "x"}}, {"id": "b", "name": "nobody_declared"},
             {"id": "c", "name": "open_gate"}]
    schedule.receive(json.dumps({"toolCall": {"functionCalls": calls}}), 0.1)
    answered = [r[0] for r in schedule.outbox.tool_responses]
    assert answered == ["a", "b"] and "error" in schedule.outbox.tool_responses[1][2]
    schedule.receive(json.dumps({"toolCallCancellation": {"ids": ["b"]}}), 0.2)
    assert [r[0] for r in schedule.outbox.tool_responses] == ["a"]


def test_go_away_rotates_at_the_turn_boundary_or_at_the_deadline_minus_the_margin() -> None:
    idle = _schedule(margin=1.0)
    assert not idle.rotation_due(0.5) and not idle.go_away_seen
    idle.receive(json.dumps({"goAway": {"timeLeft": "10s"}}), 1.0)
    assert idle.go_away_seen and idle.rotation_due(1.0)  # no turn in progress: rotate now

    busy = _schedule(margin=1.0)
    busy.outbox.prompts.offer(PendingPrompt("Describe", "cadence"), turn_in_progress=False)
    assert _drain(busy, 0.5) == ["realtimeInput.text"]
    busy.receive(json.dumps({"goAway": {"timeLeft": "10s"}}), 1.0)
    assert not busy.rotation_due(5.0) and busy.rotation_due(10.0)  # 1.0 + 10 - 1 margin
    busy.receive(TURN_COMPLETE, 6.0)
    assert busy.rotation_due(6.0)  # the turn ended first
    busy.connection_lost()
    _connect(busy, 7.0)
    assert not busy.rotation_due(20.0)  # a new connection: no goAway yet


def test_a_turn_without_server_frames_stalls_after_the_response_timeout() -> None:
    schedule = _schedule(timeout=5.0)
    assert not schedule.stalled(100.0)  # nothing awaited
    schedule.outbox.prompts.offer(PendingPrompt("Describe", "cadence"), turn_in_progress=False)
    assert _drain(schedule, 10.0) == ["realtimeInput.text"]
    assert not schedule.stalled(14.0) and schedule.stalled(15.5)
    schedule.receive(json.dumps({"serverContent": {"outputTranscription": {"text": "A"}}}), 15.0)
    assert not schedule.stalled(19.0)
    calls = [{"id": "g", "name": "open_gate", "args": {}}]
    schedule.receive(json.dumps({"toolCall": {"functionCalls": calls}}), 19.0)
    assert not schedule.stalled(60.0)  # waiting on the client's answer, not on the server
