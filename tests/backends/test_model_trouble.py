"""The model path reports trouble within seconds (issue 15, item 2), through the real pipeline.

A Live emulator that stops answering gives a retryable ``stalled`` error event
(the stall timeout is ``--stall-timeout``), a REST emulator answering 429 gives
one ``rate_limited`` event naming the server's delay, and ``--backend auto``
with a key but an unreachable Google (a closed loopback port, or a listening
socket whose accept queue is full, so SYNs go unanswered) falls to the offline
analyzer within seconds, with the same detections as a run without a key.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.clips import make_clip
from helpers.events import Collector
from helpers.live import API_KEY as LIVE_KEY
from helpers.live import checked_emulator
from helpers.paths import SAMPLES
from helpers.rest import API_KEY as REST_KEY
from helpers.timing import scaled

from vision_stream.backends.base import Backend
from vision_stream.backends.factory import make_backend
from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveSettings, LiveTimeouts
from vision_stream.backends.gemini_rest import GeminiRestBackend, RestSettings
from vision_stream.cli.args import backend_options_from
from vision_stream.cli.parser import build_parser
from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from vision_stream.events import Commentary, ErrorEvent, Event, SessionEnded
from vision_stream.media.file_source import FileSource
from vision_stream.pipeline import Session
from vision_stream.testing.live_knobs import EmulatorKnobs, Fault
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestFault, RestKnobs

CLI = [sys.executable, "-m", "vision_stream.cli"]


def test_stall_timeout_defaults_well_under_30_s_and_the_flag_sets_it() -> None:
    assert LiveTimeouts().response <= 10.0
    parser = build_parser()
    env = {"GEMINI_API_KEY": LIVE_KEY}
    given = backend_options_from(parser.parse_args(["replay", "x.mp4", "--stall-timeout", "4"]), env)
    for name in ("live", "auto"):
        backend = make_backend(name, given)
        live = backend if isinstance(backend, GeminiLiveBackend) else backend.links[0].backend  # type: ignore[attr-defined]
        assert live.settings.timeouts.response == 4.0
    default = make_backend("live", backend_options_from(parser.parse_args(["replay", "x.mp4"]), env))
    assert isinstance(default, GeminiLiveBackend) and default.settings.timeouts.response == LiveTimeouts().response


async def run_session(clip: Path, backend: Backend, *, interval: float = 1.0) -> tuple[Collector[Event], float,
                                                                                       asyncio.Task[None]]:
    """A paced pipeline session over ``clip``; its event collector, start time and runner task."""
    session = Session(
        settings=SessionSettings(session_id="trouble", source_description="clip", commentary_interval=interval),
        source=FileSource(clip, audio=AudioPolicy()), backend=backend,
        sampling=SamplingPolicy(fps=2, max_fps=4), limits=Limits(), paced=True, lossless=False,
    )
    log = Collector(session.log.follow())
    started = time.monotonic()
    return log, started, asyncio.create_task(session.run())


def first_error(log: Collector[Event], code: str) -> ErrorEvent | None:
    return next((e for e in log.payloads(ErrorEvent) if e.code == code), None)


@pytest.mark.slow
async def test_a_stalled_live_model_is_an_error_event_within_seconds_then_it_recovers(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=5.0, fps=10)
    knobs = EmulatorKnobs(api_keys=(LIVE_KEY,), faults=(Fault(kind="stall", at=0.5, connections=(1,)),))
    async with checked_emulator(knobs, strict=False) as emu:
        settings = LiveSettings(base_url=emu.url, api_key=LIVE_KEY,
                                timeouts=LiveTimeouts(response=3.0, close=0.5, close_flush=8.0))
        log, started, runner = await run_session(clip, GeminiLiveBackend(settings))
        seen = await log.until(lambda: first_error(log, "stalled") is not None, within=scaled(15),
                               what="a stalled error event")
        assert seen - started < 10.0, f"stalled reported only after {seen - started:.1f} s"
        stalled = first_error(log, "stalled")
        assert stalled is not None and stalled.retryable and "no answer for 3 s" in stalled.message
        await asyncio.wait_for(runner, scaled(30))
        await log.finish(scaled(5))
    kinds = [type(e.payload) for e in log.events]
    after = kinds[kinds.index(ErrorEvent):]
    assert Commentary in after, "the reconnected session answers again"
    finals = [c for c in log.payloads(Commentary) if c.final]
    assert finals and isinstance(log.events[-1].payload, SessionEnded)


async def test_a_429_hold_is_one_rate_limited_event_naming_the_delay_then_analysis_resumes(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=3.0, fps=10)
    knobs = RestKnobs(api_keys=(REST_KEY,), retry_delay=1.5, faults=(RestFault(kind="429", count=2),))
    async with RestEmulator(knobs) as rest:
        settings = RestSettings(base_url=rest.url, api_key=REST_KEY, requests_per_minute=600, burst=5)
        log, started, runner = await run_session(clip, GeminiRestBackend(settings))
        seen = await log.until(lambda: first_error(log, "rate_limited") is not None, within=scaled(10),
                               what="a rate_limited error event")
        assert seen - started < 10.0
        await asyncio.wait_for(runner, scaled(30))
        await log.finish(scaled(5))
        statuses = [r.status for r in rest.generate_requests()]
    held = [e for e in log.payloads(ErrorEvent) if e.code == "rate_limited"]
    assert len(held) == 1, held  # once per hold, not per retry (two 429s in a row)
    assert held[0].retryable and "429" in held[0].message and "1.5 s" in held[0].message
    assert statuses[:3] == [429, 429, 200]
    kinds = [type(e.payload) for e in log.events]
    assert Commentary in kinds[kinds.index(ErrorEvent):], "analysis resumes after the hold"


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port that never answers: listening, its accept queue full, so new SYNs are dropped
    (what a firewall that drops packets looks like to a client: the connect times out)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def replay_sample(port: int | None) -> tuple[float, collections.Counter[str], list[dict[str, object]]]:
    """``replay samples/sample.mp4 --fast --json``: without a key (None), or with one and both Google
    URLs at loopback ``port``. Returns (seconds, detection labels counted, events)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "VISION_STREAM_LIVE_URL", "VISION_STREAM_REST_URL")}
    args = [*CLI, "replay", str(SAMPLES / "sample.mp4"), "--fast", "--json"]
    if port is not None:
        env["GEMINI_API_KEY"] = "AIzaTEST-unreachable-0123456789"
        args += ["--live-url", f"ws://127.0.0.1:{port}", "--rest-url", f"http://127.0.0.1:{port}"]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), scaled(60))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    labels = collections.Counter(str(e["detection"]["label"]) for e in events if "detection" in e)
    return elapsed, labels, events


@pytest.mark.slow
async def test_a_key_with_google_unreachable_falls_back_fast_with_the_same_detections(blackhole: int) -> None:
    baseline, expected, _ = await replay_sample(None)
    assert expected, "the offline analyzer detects something in the sample"
    for port, what in ((closed_port(), "closed port"), (blackhole, "blackhole")):
        elapsed, labels, events = await replay_sample(port)
        assert labels == expected, (what, labels, expected)
        assert elapsed - baseline < 5.0, f"{what}: {elapsed:.1f} s vs {baseline:.1f} s without a key"
        changes = [e["backendChanged"] for e in events if "backendChanged" in e]
        assert changes and changes[-1]["toBackend"] == "local", (what, changes)
        assert "AIzaTEST" not in json.dumps(events)
