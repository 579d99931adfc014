"""Prometheus metrics end to end: a real server, real sessions of the sample clip, scraped over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from helpers.clips import make_clip
from helpers.http import base_url
from helpers.server import Served, serve
from prometheus_client.parser import text_string_to_metric_families

from vision_stream.config import Limits
from vision_stream.metrics import MAX_LABELLED_SESSIONS, SWITCH_REASONS, switch_reason
from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb

FAST = pb.SessionConfig(commentary_interval=4, backend="local")


@pytest.fixture
async def served_http(media_root: Path) -> AsyncIterator[Served]:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))
    async for s in serve(config, media_root, http_port=0):
        yield s


async def scrape(served: Served) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET /metrics (no token), parsed by prometheus_client's own parser: sample name -> (labels, value)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base_url(served) + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if all(got.get(k) == want for k, want in labels.items()))


async def watch(served: Served, source: str) -> list[pb.Event]:
    return [e async for e in served.stub.Watch(pb.WatchRequest(source=source, fast=True, config=FAST))]


async def test_metrics_show_a_watch_sessions_real_numbers(served_http: Served) -> None:
    events = await watch(served_http, "sample.mp4")
    sid = events[0].session_id
    totals = events[-1].session_ended.totals
    samples = await scrape(served_http)

    # The same numbers the session's own Stats report (read at scrape time, not counted twice).
    assert value(samples, "vision_stream_frames_in_total", session=sid) == totals.frames_in > 200
    assert value(samples, "vision_stream_frames_sampled_total", session=sid) == totals.frames_sampled > 0
    assert value(samples, "vision_stream_frames_sent_total", session=sid) == totals.frames_sent > 0
    assert value(samples, "vision_stream_audio_chunks_sent_total", session=sid) == totals.audio_chunks_sent > 100
    assert value(samples, "vision_stream_prompts_total", session=sid) == totals.prompts_sent > 0
    turns = sum(1 for e in events if e.HasField("commentary") and e.commentary.final)
    assert value(samples, "vision_stream_commentary_turns_total", session=sid) == turns > 0
    assert value(samples, "vision_stream_sessions", state="ended", backend="local") >= 1
    # Watch followed the log live: its deliveries were timed.
    assert value(samples, "vision_stream_event_fanout_seconds_count") > 0
    assert "vision_stream_frame_to_wire_seconds_count" in samples
    # Nothing but counts and ids: no source path, no prompt text.
    for name, rows in samples.items():
        for labels, _ in rows:
            assert "sample.mp4" not in labels.values(), name


async def test_session_labels_are_bounded_with_30_sessions(served_http: Served) -> None:
    make_clip(served_http.media_root / "short.mp4", seconds=1.0, fps=5, size=(160, 120))
    ids = []
    for _ in range(30):
        events = await watch(served_http, "short.mp4")
        ids.append(events[0].session_id)
    samples = await scrape(served_http)

    rows = samples["vision_stream_frames_in_total"]
    labels = {labels["session"] for labels, _ in rows}
    assert len(labels) == MAX_LABELLED_SESSIONS + 1 and "other" in labels
    assert labels - {"other"} <= set(ids)
    # "other" sums the 10 sessions without a label of their own: no session's frames are lost.
    per_session = {v for labels, v in rows if labels["session"] != "other"}
    assert len(per_session) == 1 and per_session.pop() > 0
    named = sum(v for labels, v in rows if labels["session"] != "other")
    assert value(samples, "vision_stream_frames_in_total", session="other") == named / MAX_LABELLED_SESSIONS * 10
    assert value(samples, "vision_stream_sessions", state="ended") == 30


def test_switch_reasons_are_a_fixed_vocabulary() -> None:
    assert switch_reason("gemini_live", "gemini_live", "go_away") == "reconnect"
    assert switch_reason("gemini_live", "gemini_rest", "gemini_live: connect timed out") == "timeout"
    assert switch_reason("gemini_rest", "gemini_live", "gemini_live is healthy again") == "recovered"
    assert switch_reason("a", "b", "x" * 10_000) == "error"
    assert {switch_reason("a", "b", text) for text in ("quota exceeded", "HTTP 429", "503 unavailable")} <= set(
        SWITCH_REASONS)
