"""Sans-I/O parts of the REST path: SSE framing, error classification, bodies, limiter, frame choice."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from google.genai import types

from vision_stream.backends.gemini_api import parse_duration
from vision_stream.backends.gemini_rest import RestRetryPolicy
from vision_stream.backends.gemini_rest.errors import classify_error, parse_retry_after
from vision_stream.backends.gemini_rest.limiter import RateLimiter, seconds_until_pacific_midnight
from vision_stream.backends.gemini_rest.messages import ImagePart, build_request, join_chunks, parse_chunk
from vision_stream.backends.gemini_rest.snapshot_policy import RollingSummary, frames_within_budget, pick_frames
from vision_stream.backends.gemini_rest.sse import SSEParser
from vision_stream.errors import ProtocolError, UsageError

# ---- SSE -------------------------------------------------------------------------------------


def test_sse_events_split_anywhere_give_the_same_payloads() -> None:
    stream = 'data: {"a":1}\r\n\r\n: keep-alive comment\n\ndata: {"b":\r\ndata: 2}\n\nevent: x\nid: 7\ndata:{"c":3}\r\r'
    whole = SSEParser().feed(stream)
    assert whole == ['{"a":1}', '{"b":\n2}', '{"c":3}']
    for size in (1, 2, 3, 5, 7):
        parser = SSEParser()
        got: list[str] = []
        for start in range(0, len(stream), size):
            got += parser.feed(stream[start:start + size])
        got += parser.close()
        assert got == whole, size


def test_sse_last_event_without_blank_line_counts_at_close() -> None:
    parser = SSEParser()
    assert parser.feed('data: {"x": 1}') == []
    assert parser.close() == ['{"x": 1}']


def test_sse_event_size_is_bounded() -> None:
    parser = SSEParser(max_event_bytes=100)
    with pytest.raises(ProtocolError):
        parser.feed("data: " + "x" * 200 + "\n")


# ---- errors ----------------------------------------------------------------------------------

QUOTA_DETAILS = [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
     "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"},
]


def test_429_carries_the_retry_delay() -> None:
    error = {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "You exceeded your current quota",
             "details": QUOTA_DETAILS}
    exc = classify_error(429, error, model="m")
    assert (exc.code, exc.retryable, exc.retry_after, exc.status) == ("quota", True, 34.0, 429)
    assert "You exceeded your current quota" in exc.message


def test_per_day_quota_is_not_retried_even_with_a_retry_delay() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}]
    exc = classify_error(429, {"code": 429, "message": "quota", "details": details}, model="m")
    assert exc.code == "quota_per_day" and not exc.retryable and exc.retry_after is None
    assert "PerDay" in exc.message


def test_retry_after_header_is_used_without_retry_info() -> None:
    exc = classify_error(503, {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}, model="m",
                         retry_after_header=parse_retry_after("3"))
    assert exc.code == "unavailable" and exc.retryable and exc.retry_after == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None


def test_bad_key_is_permanent_with_the_servers_message_and_no_secret() -> None:
    error = {"code": 400, "status": "INVALID_ARGUMENT", "message": "API key not valid. Please pass a valid API key.",
             "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}
    exc = classify_error(400, error, model="m", secrets=("sekrit",))
    assert exc.code == "api_key_invalid" and not exc.retryable and exc.status == 400
    assert "API key not valid. Please pass a valid API key." in exc.message
    leaky = classify_error(400, {"code": 400, "message": "key sekrit is bad"}, model="m", secrets=("sekrit",))
    assert "sekrit" not in leaky.message


def test_404_names_the_setting_to_change() -> None:
    exc = classify_error(404, {"code": 404, "status": "NOT_FOUND", "message": "models/x is not found"},
                         model="gemini-3.8-live")
    assert exc.code == "model_not_found" and not exc.retryable
    assert "gemini-3.8-live" in exc.message and "--snapshot-model" in exc.message and "Live-only" in exc.message


def test_error_object_inside_a_stream_takes_its_own_code() -> None:
    exc = classify_error(200, {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}, model="m")
    assert exc.status == 503 and exc.retryable


def test_durations() -> None:
    assert parse_duration("34s") == 34.0
    assert parse_duration("0.500s") == 0.5
    assert parse_duration("34") is None and parse_duration(34) is None


# ---- bodies and responses --------------------------------------------------------------------


def test_request_body_has_the_documented_shape_and_google_schema() -> None:
    body = build_request([ImagePart(b"\xff\xd8jpeg1"), ImagePart(b"\xff\xd8jpeg2")], "What happens?",
                         system_instruction="You comment.", max_output_tokens=128,
                         media_resolution="MEDIA_RESOLUTION_MEDIUM")
    assert set(body) == {"contents", "systemInstruction", "generationConfig"}
    (content,) = body["contents"]
    assert content["role"] == "user"
    assert [list(p) for p in content["parts"]] == [["inlineData"], ["inlineData"], ["text"]]
    assert content["parts"][0]["inlineData"] == {"mimeType": "image/jpeg",
                                                 "data": base64.b64encode(b"\xff\xd8jpeg1").decode()}
    assert body["systemInstruction"] == {"parts": [{"text": "You comment."}]}
    assert body["generationConfig"] == {"maxOutputTokens": 128, "mediaResolution": "MEDIA_RESOLUTION_MEDIUM"}
    # The official SDK's schema (extra fields forbidden) accepts every piece.
    parsed = types.Content.model_validate_json(json.dumps(content))
    assert parsed.parts is not None and parsed.parts[1].inline_data is not None
    assert parsed.parts[1].inline_data.data == b"\xff\xd8jpeg2"
    types.Content.model_validate_json(json.dumps(body["systemInstruction"]))
    types.GenerationConfig.model_validate_json(json.dumps(body["generationConfig"]))


def test_response_chunks_parse_and_join() -> None:
    first = parse_chunk({"candidates": [{"content": {"parts": [{"text": "A red "}, {"text": "x", "thought": True}]}}],
                         "usageMetadata": {"promptTokenCount": 300}, "newField": {"ignored": True}})
    last = parse_chunk({"candidates": [{"content": {"parts": [{"text": "ball."}]}, "finishReason": "STOP"}],
                        "usageMetadata": {"promptTokenCount": "300", "candidatesTokenCount": "4"}})
    reply = join_chunks([first, last])
    assert (reply.text, reply.finish_reason, reply.prompt_tokens, reply.response_tokens) == ("A red ball.", "STOP",
                                                                                              300, 4)
    assert not reply.blocked


def test_safety_and_prompt_blocks_are_recognised() -> None:
    safety = parse_chunk({"candidates": [{"finishReason": "SAFETY", "safetyRatings": [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]}]})
    assert safety.blocked and safety.safety == ("HARM_CATEGORY_HARASSMENT",)
    reply = join_chunks([safety])
    assert "finishReason SAFETY" in reply.block_message() and "HARASSMENT" in reply.block_message()
    prompt = join_chunks([parse_chunk({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})])
    assert prompt.blocked and "blockReason PROHIBITED_CONTENT" in prompt.block_message()
    assert parse_chunk({"error": {"code": 500}}).error == {"code": 500}


# ---- limiter ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spreads_requests_to_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=2, clock=clock)  # one a second
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 1.0, 2.0, 3.0])
    clock.now += 10
    assert limiter.reserve() == 0.0


def test_holds_extend_and_apply_to_every_caller() -> None:
    clock = FakeClock()
    limiter = RateLimiter(600, burst=10, clock=clock)
    limiter.hold(2.0, "429")
    limiter.hold(1.0, "shorter: ignored")
    assert limiter.reserve() == pytest.approx(2.0)
    assert limiter.blocked_for() == pytest.approx(2.0)
    limiter.exhaust_day("PerDay", seconds=3600)
    assert limiter.day_exhausted and limiter.blocked_for() == pytest.approx(3600)


def test_pacific_midnight_is_within_a_day() -> None:
    # 2026-03-01 12:00 UTC = 04:00 PST: 20 hours to midnight in Los Angeles.
    assert seconds_until_pacific_midnight(1772366400.0) == pytest.approx(20 * 3600)


# ---- frame choice and summary ----------------------------------------------------------------


def test_pick_frames_keeps_the_newest_and_the_most_different() -> None:
    flat = [np.full((18, 32), v, np.float32) for v in (0.2, 0.21, 0.9, 0.22, 0.2)]
    assert pick_frames(flat, None, 1) == [4]
    assert pick_frames(flat, None, 2) == [2, 4]  # the odd one out (a cut) beats near-duplicates
    # Against a reference (the last frame analysed), the candidate least like both it and "now" wins.
    assert pick_frames(flat, np.full((18, 32), 0.9, np.float32), 2) == [3, 4]
    assert pick_frames([flat[0], flat[0]], None, 3) == [1]  # exact duplicates add nothing
    assert frames_within_budget(8, 1024, "MEDIA_RESOLUTION_MEDIUM") == 4
    assert frames_within_budget(3, 1024, "MEDIA_RESOLUTION_LOW") == 3
    assert frames_within_budget(3, 10, "MEDIA_RESOLUTION_LOW") == 1


def test_rolling_summary_is_bounded_and_keeps_the_newest() -> None:
    from vision_stream.backends.gemini_rest.snapshot_policy import SummaryLimits

    summary = RollingSummary(SummaryLimits(entries=3, chars=60))
    for i in range(5):
        summary.add(f"comment number {i}", float(i))
    assert summary.texts() == ["comment number 2", "comment number 3", "comment number 4"]
    rendered = summary.render()
    assert rendered.endswith("- [4.0 s] comment number 4") and len(rendered) <= 60


def test_bad_retry_and_rate_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="max_retry_wait"):
        RestRetryPolicy(max_retry_wait=-1)
    with pytest.raises(UsageError, match="max_attempts"):
        RestRetryPolicy(max_attempts=0)
    with pytest.raises(UsageError, match="jitter"):
        RestRetryPolicy(jitter=1.5)
    with pytest.raises(UsageError, match="per minute"):
        RateLimiter(0)
    with pytest.raises(UsageError, match="burst"):
        RateLimiter(10, burst=0)
    policy = RestRetryPolicy(base_backoff=0.2, max_backoff=1.0, jitter=0.0)
    assert [policy.backoff.delay(n) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 1.0]
