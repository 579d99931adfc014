"""The failover chain end to end: pipeline → chain → live / REST / offline, over real loopback sockets.

The Live emulator (WebSocket) and the REST emulator (HTTP) play Google; faults
are switched on and off while a looping clip plays at source speed.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from helpers.events import Collector
from helpers.frames import flat_frame
from helpers.rest import API_KEY
from helpers.timing import scaled

from vision_stream.backends.base import BackendSession
from vision_stream.backends.failover import FailoverBackend, FailoverPolicy, FailoverSession, Link
from vision_stream.backends.failover_health import server_delay
from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveSettings, LiveTimeouts, ReconnectPolicy
from vision_stream.backends.gemini_rest import GeminiRestBackend, RestRetryPolicy, RestSettings
from vision_stream.backends.gemini_rest.errors import classify_error
from vision_stream.backends.local import LocalBackend
from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from vision_stream.errors import ServiceError
from vision_stream.events import BackendChanged, Commentary, Event, SessionEnded, SessionStarted
from vision_stream.media.file_source import FileSource
from vision_stream.pipeline import Session
from vision_stream.retry import is_quota
from vision_stream.testing.live_emulator import LiveEmulator
from vision_stream.testing.live_knobs import EmulatorKnobs, Fault
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestFault, RestKnobs

# Each test plays a clip at source speed for 2-12 s (~45 s in all); the rules themselves run in
# milliseconds against fake links in test_failover_rules.py.
pytestmark = pytest.mark.slow

CADENCE = 2.0  # seconds of media between commentary prompts
POLICY = FailoverPolicy(open_timeout=5.0, probe_base=0.5, probe_max=2.0, drain_timeout=2.0)


class Opened:
    """The chain as a Backend that keeps the session it opened: the pipeline's open
    backend session, reached through the public Backend interface."""

    def __init__(self, backend: FailoverBackend) -> None:
        self.backend = backend
        self.name = backend.name
        self.session: FailoverSession | None = None

    async def open(self, settings: SessionSettings) -> BackendSession:
        session = await self.backend.open(settings)
        assert isinstance(session, FailoverSession)
        self.session = session
        return session


@dataclass
class Rig:
    live: LiveEmulator
    rest: RestEmulator
    backend: Opened
    session: Session
    log: Collector[Event]

    @property
    def events(self) -> list[Event]:
        return self.log.events

    @property
    def chain(self) -> FailoverSession:
        assert self.backend.session is not None, "the pipeline has not opened its backend yet"
        return self.backend.session

    def changes(self) -> list[BackendChanged]:
        return self.log.payloads(BackendChanged)

    def final_commentary(self, backend: str) -> list[Commentary]:
        return [c for c in self.log.payloads(Commentary) if c.final and c.backend == backend]

    async def until(self, predicate: Callable[[], bool], *, within: float = 20.0, what: str = "the condition",
                    every: float = 0.01) -> float:
        """Wait (polling every 10 ms) until ``predicate()``; returns the monotonic time it became true."""
        return await self.log.until(predicate, within=within, what=what, every=every)


def chain_for(live: LiveEmulator, rest: RestEmulator, *, policy: FailoverPolicy = POLICY,
              rest_retry: RestRetryPolicy | None = None) -> FailoverBackend:
    live_settings = LiveSettings(
        base_url=live.url, api_key=API_KEY,
        reconnect=ReconnectPolicy(max_attempts=2, base_backoff=0.1, max_backoff=0.5, quota_backoff=0.0),
        timeouts=LiveTimeouts(connect=2.0, setup=2.0, close_flush=2.0),
    )
    rest_settings = RestSettings(
        base_url=rest.url, api_key=API_KEY, requests_per_minute=600, burst=5,
        retry=rest_retry or RestRetryPolicy(max_attempts=2, base_backoff=0.1, max_backoff=0.5, max_retry_wait=5.0),
    )
    return FailoverBackend([Link("live", GeminiLiveBackend(live_settings)),
                            Link("rest", GeminiRestBackend(rest_settings)),
                            Link("local", LocalBackend())], policy=policy)


async def start_rig(clip: Path, live_knobs: EmulatorKnobs, rest_knobs: RestKnobs, *, cadence: float = CADENCE,
                    policy: FailoverPolicy = POLICY, rest_retry: RestRetryPolicy | None = None,
                    ) -> tuple[Rig, asyncio.Task[None], asyncio.Task[None]]:
    live = await LiveEmulator(live_knobs).start()
    rest = await RestEmulator(rest_knobs).start()
    backend = Opened(chain_for(live, rest, policy=policy, rest_retry=rest_retry))
    session = Session(
        settings=SessionSettings(session_id="failover", source_description="test clip",
                                 commentary_interval=cadence),
        source=FileSource(clip, audio=AudioPolicy(), loop=True), backend=backend,
        sampling=SamplingPolicy(fps=2, max_fps=4), limits=Limits(), paced=True, lossless=False,
    )
    rig = Rig(live, rest, backend, session, Collector(session.log.follow()))
    runner = asyncio.create_task(session.run())
    return rig, runner, rig.log.task


async def finish(rig: Rig, runner: asyncio.Task[None], follower: asyncio.Task[None]) -> None:
    rig.session.stop("end_of_input")
    await asyncio.wait_for(runner, scaled(30))
    await asyncio.wait_for(follower, scaled(5))
    await rig.live.close()
    await rig.rest.close()
    seqs = [e.seq for e in rig.events]
    assert seqs == list(range(1, len(seqs) + 1)), "seq must be gap-free"
    assert isinstance(rig.events[-1].payload, SessionEnded)
    # No turn is answered twice: final commentary turn ids are unique within each backend stint
    # (turn ids restart with every new backend session).
    stint, turns = 0, []
    for event in rig.events:
        if isinstance(event.payload, BackendChanged):
            stint += 1
        elif isinstance(event.payload, Commentary) and event.payload.final:
            turns.append((stint, event.payload.backend, event.payload.turn_id))
    assert len(turns) == len(set(turns)), turns


async def test_live_refused_at_start_runs_on_rest_then_returns_to_live(clip: Path) -> None:
    rig, runner, follower = await start_rig(clip, EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503),
                                            RestKnobs(api_keys=(API_KEY,)))
    try:
        await rig.until(what="REST commentary", predicate=lambda: len(rig.final_commentary("rest")) >= 2)
        started = rig.events[0].payload
        assert isinstance(started, SessionStarted) and started.backend == "rest"
        first = rig.changes()[0]
        assert (first.from_backend, first.to_backend) == ("live", "rest") and "503" in first.reason
        # The REST answers describe the frames the emulator received.
        assert "picture" in rig.final_commentary("rest")[0].text
        # The emulator heals: the chain probes Live and comes back.
        rig.live.knobs = replace(rig.live.knobs, refuse_status=None)
        await rig.until(what="back to live", predicate=lambda: len(rig.changes()) >= 2)
        back = rig.changes()[1]
        assert (back.from_backend, back.to_backend) == ("rest", "live") and "healthy" in back.reason
        await rig.until(what="live commentary", predicate=lambda: len(rig.final_commentary("live")) >= 1)
    finally:
        await finish(rig, runner, follower)
    assert len(rig.changes()) == 2


async def test_live_dropping_mid_stream_fails_over_within_a_cadence_and_comes_back(
    clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    knobs = EmulatorKnobs(api_keys=(API_KEY,), faults=(Fault(kind="drop", at=3.0, connections=(1,)),))
    rig, runner, follower = await start_rig(clip, knobs, RestKnobs(api_keys=(API_KEY,)))
    try:
        await rig.until(what="live commentary", predicate=lambda: len(rig.final_commentary("live")) >= 1)
        # From now on the upgrade is refused: the live session's reconnects fail.
        rig.live.knobs = replace(rig.live.knobs, refuse_status=503)
        dropped_at = await rig.until(what="the TCP drop", predicate=lambda: rig.live.connections[0].close_code == 1006)
        switched_at = await rig.until(what="failover", predicate=lambda: bool(rig.changes()))
        change = rig.changes()[0]
        assert (change.from_backend, change.to_backend) == ("live", "rest")
        failover_seconds = switched_at - dropped_at
        assert failover_seconds < CADENCE
        logging.getLogger("test").info("live failure -> backend_changed: %.3f s", failover_seconds)
        await rig.until(what="REST commentary", predicate=lambda: len(rig.final_commentary("rest")) >= 1,
                        within=CADENCE * 3)
        # The narrative continues: the first REST request carries what live said.
        first_text = rig.rest.generate_requests()[0].body["contents"][0]["parts"][-1]["text"]
        assert "Your recent comments" in first_text
        assert rig.final_commentary("live")[-1].text.split()[0] in first_text
        rig.live.knobs = replace(rig.live.knobs, refuse_status=None)
        await rig.until(what="back to live", predicate=lambda: len(rig.changes()) >= 2)
        assert (rig.changes()[1].from_backend, rig.changes()[1].to_backend) == ("rest", "live")
        before = len(rig.final_commentary("live"))
        await rig.until(what="live commentary again", predicate=lambda: len(rig.final_commentary("live")) > before)
    finally:
        await finish(rig, runner, follower)
    assert len(rig.changes()) == 2
    assert all(API_KEY not in r.getMessage() for r in caplog.records)
    print(f"\nmeasured: live failure -> first fallback event {failover_seconds * 1000:.0f} ms")


async def test_rest_failing_too_goes_offline_then_back_to_live(clip: Path) -> None:
    rig, runner, follower = await start_rig(clip, EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503),
                                            RestKnobs(api_keys=(API_KEY,), faults=(RestFault(kind="503"),)))
    try:
        await rig.until(what="offline", predicate=lambda: any(c.to_backend == "local" for c in rig.changes()))
        await rig.until(what="offline commentary", predicate=lambda: len(rig.final_commentary("local")) >= 1)
        to_rest, to_local = rig.changes()[:2]
        assert (to_rest.from_backend, to_rest.to_backend) == ("live", "rest")
        assert (to_local.from_backend, to_local.to_backend) == ("rest", "local") and "503" in to_local.reason
        rig.live.knobs = replace(rig.live.knobs, refuse_status=None)
        rig.rest.heal()
        await rig.until(what="back to live", predicate=lambda: rig.changes()[-1].to_backend == "live")
        await rig.until(what="live commentary", predicate=lambda: len(rig.final_commentary("live")) >= 1)
    finally:
        await finish(rig, runner, follower)
    for change in rig.changes():
        assert change.reason


async def test_daily_quota_goes_offline_without_hammering(clip: Path) -> None:
    rig, runner, follower = await start_rig(clip, EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503),
                                            RestKnobs(api_keys=(API_KEY,), faults=(RestFault(kind="perday"),)))
    try:
        await rig.until(what="offline", predicate=lambda: any(c.to_backend == "local" for c in rig.changes()))
        await asyncio.sleep(scaled(3.0))  # several probe periods: REST refuses at open, costs no request
    finally:
        await finish(rig, runner, follower)
    assert len(rig.rest.generate_requests()) == 1
    assert "PerDay" in rig.changes()[1].reason
    assert rig.changes()[-1].to_backend == "local"



# A 429 storm, scaled down: for a "minute" (STORM_SECONDS) every REST request answers 429 with
# RetryInfo.retryDelay (STORM_RETRY_DELAY; the chain's probe_base is shorter, as in production where
# Google asks for tens of seconds and probe_base is 5 s). Live stays refused, so REST is the link that flaps.
STORM_SECONDS = 10.0
STORM_RETRY_DELAY = 1.0
STORM_CADENCE = 0.5
STORM_POLICY = FailoverPolicy(open_timeout=5.0, probe_base=0.25, probe_max=2.0, drain_timeout=2.0)
STORM_RETRY = RestRetryPolicy(max_attempts=2, base_backoff=0.1, max_backoff=0.5, max_retry_wait=5.0)
TIMER_SLACK = 0.1  # seconds: a switch is announced a little after the decision it follows


def storm_gap(failures: int) -> float:
    """The shortest time REST may stay closed after its ``failures``-th quota failure in a row:
    the server's retry delay and the chain's (jittered, doubling, capped) backoff, whichever is later."""
    p = STORM_POLICY
    backoff = min(p.probe_max, p.probe_base * 2 ** (failures - 1)) * (1.0 - p.probe_jitter)
    return max(STORM_RETRY_DELAY, backoff)


def storm_bound(seconds: float) -> int:
    """Most REST reopenings that fit in ``seconds``: each costs its gap plus the in-request retry wait."""
    spent, reopenings = STORM_RETRY_DELAY, 0  # the first stint waits one retry delay before failing
    while spent + storm_gap(reopenings + 1) + STORM_RETRY_DELAY <= seconds:
        reopenings += 1
        spent += storm_gap(reopenings) + STORM_RETRY_DELAY
    return reopenings + 1  # a reopening may start in the last stretch without failing before the end


async def test_429_storm_switches_stay_few_and_healing_brings_rest_back(clip: Path) -> None:
    rig, runner, follower = await start_rig(
        clip, EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503),
        RestKnobs(api_keys=(API_KEY,), retry_delay=STORM_RETRY_DELAY, faults=(RestFault(kind="429"),)),
        cadence=STORM_CADENCE, policy=STORM_POLICY, rest_retry=STORM_RETRY)
    try:
        await asyncio.sleep(STORM_SECONDS)
        storm = [(when, old, new) for when, old, new, _ in rig.chain.switch_log]
        requests = [r for r in rig.rest.generate_requests() if r.status]
        rig.rest.heal()
        healed = time.monotonic()
        # A genuine recovery is picked up within one probe period (the capped backoff, or the retry
        # delay), plus the cadence prompt that asks the first question.
        within = max(STORM_POLICY.probe_max, STORM_RETRY_DELAY) + STORM_RETRY_DELAY + 2 * STORM_CADENCE + 1.0
        await rig.until(what="REST commentary after healing", predicate=lambda: bool(rig.final_commentary("rest")),
                        within=within)
        recovery = time.monotonic() - healed
        assert rig.chain.name == "rest"
    finally:
        await finish(rig, runner, follower)
    assert all(r.status == 429 for r in requests)
    downs = [when for when, old, new in storm if (old, new) == ("rest", "local")]
    ups = [when for when, old, new in storm if (old, new) == ("local", "rest")]
    assert storm[0][1:] == ("live", "rest") and downs, storm
    assert [new for _, _, new in storm[1:]] == ["local", "rest"] * len(ups) + ["local"] * (len(downs) - len(ups))
    # Never reopened before the server's delay nor before our backoff, which doubles to the cap.
    for failures, (down, up) in enumerate(zip(downs, ups, strict=False), start=1):
        assert up - down >= storm_gap(failures) - TIMER_SLACK, (failures, up - down, storm)
    # So the storm costs a bounded number of switches and requests: one pair and one stint per step.
    assert len(ups) <= storm_bound(STORM_SECONDS), storm
    assert len(requests) <= STORM_RETRY.max_attempts * (len(ups) + 1)
    # No request went out before the previous 429's retry delay had passed.
    arrivals = [r.arrived for r in requests]
    assert all(b - a >= STORM_RETRY_DELAY - 0.05 for a, b in itertools.pairwise(arrivals))
    print(f"\nmeasured: {STORM_SECONDS:g} s storm (retryDelay {STORM_RETRY_DELAY:g} s): {len(storm)} switches "
          f"({len(ups)} back to REST), {len(requests)} REST requests; healed -> REST commentary {recovery:.2f} s")


def test_quota_failures_are_recognised_with_the_servers_delay() -> None:
    storm = {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "You exceeded your current quota",
             "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34s"}]}
    rest = classify_error(429, storm, model="gemini-flash-latest")
    assert is_quota(rest) and server_delay(rest) == 34.0
    # Live's quota close carries its verdict (code="quota"); quota is never guessed from the text.
    live = "Gemini Live: gave up after 2 failures; last: 1011 You exceeded your current quota, please check"
    assert is_quota(ServiceError(live, status=1011, retryable=True, code="quota"))
    assert not is_quota(ServiceError(live, status=1011, retryable=True))
    assert server_delay(ServiceError(live, status=1011, retryable=True)) is None
    overloaded = classify_error(503, {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."},
                                model="gemini-flash-latest")
    assert not is_quota(overloaded)


async def test_frames_arriving_while_switching_only_the_newest_is_forwarded_and_drops_are_counted(
    clip: Path,
) -> None:
    """REST fails (bad key) on its first question; the next link (live) opens slowly, so frames pile up."""
    slow_setup = 0.8  # the live emulator delays every server message, setupComplete included
    live = await LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,), latency=slow_setup)).start()
    rest = await RestEmulator(RestKnobs(api_keys=(API_KEY,), faults=(RestFault(kind="badkey"),))).start()
    backend = FailoverBackend([
        Link("rest", GeminiRestBackend(RestSettings(base_url=rest.url, api_key=API_KEY))),
        Link("live", GeminiLiveBackend(LiveSettings(
            base_url=live.url, api_key=API_KEY,
            reconnect=ReconnectPolicy(max_attempts=2, base_backoff=0.1, max_backoff=0.5, quota_backoff=0.0),
            timeouts=LiveTimeouts(connect=2.0, setup=3.0, close_flush=2.0)))),
    ], policy=POLICY)
    settings = SessionSettings(session_id="drops", source_description="test frames")
    chain = await backend.open(settings)
    assert isinstance(chain, FailoverSession) and chain.name == "rest"
    log = Collector(chain.events())
    try:
        await chain.send_frame(flat_frame(0.0, index=0))
        await chain.prompt("", reason="cadence", media_time=0.0)
        deadline = time.monotonic() + 5.0
        while not live.connections:  # the chain is opening live: it takes slow_setup seconds
            assert time.monotonic() < deadline, "the chain never started opening live"
            await asyncio.sleep(0.01)
        frames = [flat_frame(0.5 * i, (20 * i, 100, 200), index=i, square_at=20 * i) for i in range(1, 6)]
        for frame in frames:
            await chain.send_frame(frame)
        assert chain.name == "rest" and not live.connections[0].setup_complete, "frames must arrive mid-switch"
        while chain.current_index != 1:
            assert time.monotonic() < deadline + slow_setup, "the switch to live never completed"
            await asyncio.sleep(0.01)

        def videos() -> list[bytes]:
            return [base64.b64decode(m["realtimeInput"]["video"]["data"])
                    for m in live.client_messages("realtimeInput") if "video" in m["realtimeInput"]]

        while not videos():
            assert time.monotonic() < deadline + 3.0, "live never received a frame"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # anything else sent would reach the emulator by now
        assert videos() == [frames[-1].jpeg]  # only the newest reaches the wire
        # The chain replays its backlog (issue 15) and drops nothing itself; live's latest-wins
        # outbox replaces the older replayed frames and counts them.
        dropped = chain.counters().frames_dropped
        assert chain.frames_dropped == 0 and dropped >= len(frames) - 1
        # The Stats the pipeline builds merge the backend's counters (Session.stats()).
        pipeline = Session(settings=settings, source=FileSource(clip, audio=AudioPolicy()), backend=backend,
                           sampling=SamplingPolicy(fps=2), limits=Limits(), paced=True, lossless=False)
        pipeline._backend_session = chain  # what Session.run() holds once the backend is open
        assert pipeline.stats().frames_dropped == dropped
    finally:
        await chain.close()
        await log.finish(5)
        await live.close()
        await rest.close()
    changes = log.payloads(BackendChanged)
    assert [(c.from_backend, c.to_backend) for c in changes] == [("rest", "live")]
    assert "API key" in changes[0].reason


async def test_rest_failing_on_the_closing_prompt_hands_it_to_the_offline_analyzer(clip: Path) -> None:
    """The session's closing summary is not lost when the current link dies answering it."""
    rig, runner, follower = await start_rig(clip, EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503),
                                            RestKnobs(api_keys=(API_KEY,)),
                                            rest_retry=RestRetryPolicy(max_attempts=1))
    try:
        await rig.until(what="REST commentary", predicate=lambda: len(rig.final_commentary("rest")) >= 1)
        rig.rest.knobs = replace(rig.rest.knobs, faults=(RestFault(kind="503"),))
    finally:
        await finish(rig, runner, follower)
    finals = [e.payload for e in rig.events if isinstance(e.payload, Commentary) and e.payload.final]
    assert finals[-1].backend == "local" and finals[-1].text.startswith("Whole session")
    assert any(c.from_backend == "rest" and c.to_backend == "local" for c in rig.changes())
