"""The failover chain end to end: pipeline → chain → live / REST / offline, over real loopback sockets.

The Live emulator (WebSocket) and the REST emulator (HTTP) play Google; faults
are switched on and off while a looping clip plays at source speed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from rest_support import API_KEY

from vision_stream.backends.fallback import FailoverBackend, FailoverPolicy, FailoverSession, Link
from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveSettings, LiveTimeouts, ReconnectPolicy
from vision_stream.backends.gemini_rest import GeminiRestBackend, RestSettings
from vision_stream.backends.local import LocalBackend
from vision_stream.backends.rest_client import RestRetryPolicy
from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from vision_stream.events import BackendChanged, Commentary, Event, SessionEnded, SessionStarted
from vision_stream.media.file_source import FileSource
from vision_stream.pipeline import Session
from vision_stream.testing.live_emulator import LiveEmulator
from vision_stream.testing.live_knobs import EmulatorKnobs, Fault
from vision_stream.testing.rest_emulator import RestEmulator, RestFault, RestKnobs

CADENCE = 2.0  # seconds of media between commentary prompts
POLICY = FailoverPolicy(open_timeout=5.0, probe_base=0.5, probe_max=2.0, drain_timeout=2.0)


@dataclass
class Rig:
    live: LiveEmulator
    rest: RestEmulator
    backend: FailoverBackend
    session: Session
    events: list[Event]

    @property
    def chain(self) -> FailoverSession:
        chain = self.session._backend_session  # the pipeline's open backend session
        assert isinstance(chain, FailoverSession)
        return chain

    def changes(self) -> list[BackendChanged]:
        return [e.payload for e in self.events if isinstance(e.payload, BackendChanged)]

    def final_commentary(self, backend: str) -> list[Commentary]:
        return [e.payload for e in self.events
                if isinstance(e.payload, Commentary) and e.payload.final and e.payload.backend == backend]

    async def until(self, what: str, predicate: Callable[[], bool], within: float = 20.0) -> float:
        """Wait (polling every 10 ms) until ``predicate()``; returns the monotonic time it became true."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                kinds = [(e.seq, e.kind, getattr(e.payload, "reason", getattr(e.payload, "text", ""))[:80])
                         for e in self.events[-15:]]
                raise AssertionError(f"timed out waiting for {what}; last events: {kinds}")
            await asyncio.sleep(0.01)
        return time.monotonic()


def chain_for(live: LiveEmulator, rest: RestEmulator) -> FailoverBackend:
    live_settings = LiveSettings(
        base_url=live.url, api_key=API_KEY,
        reconnect=ReconnectPolicy(max_attempts=2, base_backoff=0.1, max_backoff=0.5, quota_backoff=0.0),
        timeouts=LiveTimeouts(connect=2.0, setup=2.0, close_flush=2.0),
    )
    rest_settings = RestSettings(
        base_url=rest.url, api_key=API_KEY, requests_per_minute=600, burst=5,
        retry=RestRetryPolicy(max_attempts=2, base_backoff=0.1, max_backoff=0.5, max_retry_wait=5.0),
    )
    return FailoverBackend([Link("live", GeminiLiveBackend(live_settings)),
                            Link("rest", GeminiRestBackend(rest_settings)),
                            Link("local", LocalBackend())], policy=POLICY)


async def start_rig(clip: Path, live_knobs: EmulatorKnobs, rest_knobs: RestKnobs) -> tuple[Rig, asyncio.Task[None],
                                                                                          asyncio.Task[None]]:
    live = await LiveEmulator(live_knobs).start()
    rest = await RestEmulator(rest_knobs).start()
    backend = chain_for(live, rest)
    session = Session(
        settings=SessionSettings(session_id="failover", source_description="test clip",
                                 commentary_interval=CADENCE),
        source=FileSource(clip, audio=AudioPolicy(), loop=True), backend=backend,
        sampling=SamplingPolicy(fps=2, max_fps=4), limits=Limits(), paced=True, lossless=False,
    )
    rig = Rig(live, rest, backend, session, [])

    async def follow() -> None:
        async for event in session.log.follow():
            rig.events.append(event)

    runner = asyncio.create_task(session.run())
    follower = asyncio.create_task(follow())
    return rig, runner, follower


async def finish(rig: Rig, runner: asyncio.Task[None], follower: asyncio.Task[None]) -> None:
    rig.session.stop("end_of_input")
    await asyncio.wait_for(runner, 30)
    await asyncio.wait_for(follower, 5)
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
        await rig.until("REST commentary", lambda: len(rig.final_commentary("rest")) >= 2)
        started = rig.events[0].payload
        assert isinstance(started, SessionStarted) and started.backend == "rest"
        first = rig.changes()[0]
        assert (first.from_backend, first.to_backend) == ("live", "rest") and "503" in first.reason
        # The REST answers describe the frames the emulator received.
        assert "picture" in rig.final_commentary("rest")[0].text
        # The emulator heals: the chain probes Live and comes back.
        rig.live.knobs = replace(rig.live.knobs, refuse_status=None)
        await rig.until("back to live", lambda: len(rig.changes()) >= 2)
        back = rig.changes()[1]
        assert (back.from_backend, back.to_backend) == ("rest", "live") and "healthy" in back.reason
        await rig.until("live commentary", lambda: len(rig.final_commentary("live")) >= 1)
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
        await rig.until("live commentary", lambda: len(rig.final_commentary("live")) >= 1)
        # From now on the upgrade is refused: the live session's reconnects fail.
        rig.live.knobs = replace(rig.live.knobs, refuse_status=503)
        dropped_at = await rig.until("the TCP drop", lambda: rig.live.connections[0].close_code == 1006)
        switched_at = await rig.until("failover", lambda: bool(rig.changes()))
        change = rig.changes()[0]
        assert (change.from_backend, change.to_backend) == ("live", "rest")
        failover_seconds = switched_at - dropped_at
        assert failover_seconds < CADENCE
        logging.getLogger("test").info("live failure -> backend_changed: %.3f s", failover_seconds)
        await rig.until("REST commentary", lambda: len(rig.final_commentary("rest")) >= 1, within=CADENCE * 3)
        # The narrative continues: the first REST request carries what live said.
        first_text = rig.rest.generate_requests()[0].body["contents"][0]["parts"][-1]["text"]
        assert "Your recent comments" in first_text
        assert rig.final_commentary("live")[-1].text.split()[0] in first_text
        rig.live.knobs = replace(rig.live.knobs, refuse_status=None)
        await rig.until("back to live", lambda: len(rig.changes()) >= 2)
        assert (rig.changes()[1].from_backend, rig.changes()[1].to_backend) == ("rest", "live")
        before = len(rig.final_commentary("live"))
        await rig.until("live commentary again", lambda: len(rig.final_commentary("live")) > before)
    finally:
        await finish(rig, runner, follower)
    assert len(rig.changes()) == 2
    assert all(API_KEY not in r.getMessage() for r in caplog.records)
    print(f"\nmeasured: live failure -> first fallback event {failover_seconds * 1000:.0f} ms")


async def test_rest_failing_too_goes_offline_then_back_to_live(clip: Path) -> None:
    rig, runner, follower = await start_rig(clip, EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503),
                                            RestKnobs(api_keys=(API_KEY,), faults=(RestFault(kind="503"),)))
    try:
        await rig.until("offline", lambda: any(c.to_backend == "local" for c in rig.changes()))
        await rig.until("offline commentary", lambda: len(rig.final_commentary("local")) >= 1)
        to_rest, to_local = rig.changes()[:2]
        assert (to_rest.from_backend, to_rest.to_backend) == ("live", "rest")
        assert (to_local.from_backend, to_local.to_backend) == ("rest", "local") and "503" in to_local.reason
        rig.live.knobs = replace(rig.live.knobs, refuse_status=None)
        rig.rest.heal()
        await rig.until("back to live", lambda: rig.changes()[-1].to_backend == "live")
        await rig.until("live commentary", lambda: len(rig.final_commentary("live")) >= 1)
    finally:
        await finish(rig, runner, follower)
    for change in rig.changes():
        assert change.reason


async def test_daily_quota_goes_offline_without_hammering(clip: Path) -> None:
    rig, runner, follower = await start_rig(clip, EmulatorKnobs(api_keys=(API_KEY,), refuse_status=503),
                                            RestKnobs(api_keys=(API_KEY,), faults=(RestFault(kind="perday"),)))
    try:
        await rig.until("offline", lambda: any(c.to_backend == "local" for c in rig.changes()))
        await asyncio.sleep(3.0)  # several probe periods: REST refuses at open, costs no request
    finally:
        await finish(rig, runner, follower)
    assert len(rig.rest.generate_requests()) == 1
    assert "PerDay" in rig.changes()[1].reason
    assert rig.changes()[-1].to_backend == "local"
