"""``--backend live`` retries an outage for as long as the session runs, like a camera.

Real websockets against the Live emulator on loopback; the emulator is stopped
(connections refused) or refuses upgrades with 503 for longer than the old
give-up window (6 attempts), then comes back on the same port. Backoff is
scaled down (base 0.05 s, cap 0.2 s) so a 2 s outage is many attempts.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace

import pytest
from helpers.frames import sampled_frame
from helpers.live import API_KEY, LiveEvents, fast_settings, scene, session_settings

from vision_stream.backends.factory import BackendOptions, make_backend
from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveSession, ReconnectPolicy
from vision_stream.backends.gemini_live.endings import Ending
from vision_stream.errors import ServiceError, UsageError
from vision_stream.events import BackendChanged, ErrorEvent
from vision_stream.redact import Secret
from vision_stream.retry import Backoff
from vision_stream.testing import EmulatorKnobs, Fault

pytestmark = pytest.mark.timeout(60)

FOREVER = ReconnectPolicy(max_attempts=None, base_backoff=0.05, max_backoff=0.2, quota_backoff=0.2,
                          stable_after=0.5, go_away_margin=0.05)
OLD_GIVE_UP = 6  # the former default max_attempts: ~11-13 s into an outage


def unavailable(events: LiveEvents) -> list[ErrorEvent]:
    return [e for e in events.payloads(ErrorEvent) if e.code == "backend_unavailable"]


async def commentary_after(session: LiveSession, events: LiveEvents, kind: str, media_time: float) -> None:
    before = len(events.finals())
    await session.send_frame(sampled_frame(scene(kind), media_time))
    await session.prompt("", reason="cadence", media_time=media_time)
    await events.until(lambda: len(events.finals()) > before, within=10)


async def ride_out(session: LiveSession, seconds: float) -> None:
    """Keep feeding frames through the outage: input never fails while the session retries."""
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline:
        await session.send_frame(sampled_frame(scene("green"), 1.0 + index * 0.1, index=index))
        index += 1
        await asyncio.sleep(0.1)


async def test_stopped_server_is_retried_until_it_comes_back_on_the_same_port(live_emulator) -> None:
    async with live_emulator() as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, reconnect=FOREVER)).open(session_settings())
        events = LiveEvents(session)
        await commentary_after(session, events, "red", 0.0)
        port = emu.port
        await emu.close()  # connections refused from now on
        await ride_out(session, 2.0)
        attempts_in_outage = session.connection_attempts - 1
        reports = unavailable(events)
        assert attempts_in_outage > OLD_GIVE_UP, attempts_in_outage
        assert len(reports) >= OLD_GIVE_UP and all(e.retryable for e in reports)
        assert "Connection refused" in reports[-1].message or "connect failed" in reports[-1].message
        assert not events.task.done() and session.failure is None  # the session did not end meanwhile
        await emu.start()
        assert emu.port == port
        await commentary_after(session, events, "bright", 5.0)
        await session.close()
        await events.finish()
    changed = events.payloads(BackendChanged)
    assert changed and changed[-1].from_backend == changed[-1].to_backend == "live"
    assert session.handles_used[-1] is not None  # it resumed the same Live session
    assert all(e.retryable for e in events.payloads(ErrorEvent))
    print(f"\noutage 2.0 s: {attempts_in_outage} attempts, {len(reports)} backend_unavailable events, "
          f"reconnect gap {session.reconnect_gaps[-1]:.2f} s")


async def test_refusing_server_is_retried_until_it_accepts_again(live_emulator) -> None:
    knobs = EmulatorKnobs(api_keys=(API_KEY,), faults=(Fault(kind="close1011", at=0.3, connections=(1,)),))
    async with live_emulator(knobs) as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, reconnect=FOREVER)).open(session_settings())
        events = LiveEvents(session)
        emu.knobs = replace(knobs, refuse_status=503)  # after the 1011, every upgrade is refused
        await events.until(lambda: bool(unavailable(events)), within=5)
        await ride_out(session, 1.5)
        assert session.connection_attempts - 1 > OLD_GIVE_UP
        assert any("HTTP 503" in e.message for e in unavailable(events))
        assert not events.task.done()
        emu.knobs = knobs
        await commentary_after(session, events, "bright", 5.0)
        await session.close()
        await events.finish()
    assert session.failure is None
    assert events.payloads(BackendChanged)[-1].reason.startswith("1011")


async def test_permanent_error_during_an_outage_still_ends_at_once(live_emulator) -> None:
    async with live_emulator() as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, reconnect=FOREVER)).open(session_settings())
        events = LiveEvents(session)
        await emu.close()
        await asyncio.sleep(0.5)
        emu.knobs = EmulatorKnobs(api_keys=("another-key-entirely",))  # our key is now rejected (1007)
        await emu.start()
        started = time.monotonic()
        await events.finish()
        took = time.monotonic() - started
    final = events.payloads(ErrorEvent)[-1]
    assert not final.retryable and "API key" in final.message and API_KEY not in final.message
    assert took < 2.0, took
    with pytest.raises(ServiceError):
        await session.send_frame(sampled_frame(scene("red"), 0.0))
    await session.close()


async def test_bad_key_at_open_fails_at_once_even_when_retrying_forever(live_emulator) -> None:
    async with live_emulator() as emu:
        started = time.monotonic()
        with pytest.raises(ServiceError) as caught:
            await GeminiLiveBackend(fast_settings(emu.url, api_key="wrong-key", reconnect=FOREVER)).open(
                session_settings())
        assert time.monotonic() - started < 2.0
    assert not caught.value.retryable and len(emu.connections) == 1


async def test_server_down_at_open_fails_after_open_attempts(live_emulator) -> None:
    async with live_emulator() as emu:
        url = emu.url
    policy = replace(FOREVER, open_attempts=3)
    with pytest.raises(ServiceError, match="gave up after 3 failed connection attempts"):
        await GeminiLiveBackend(fast_settings(url, reconnect=policy)).open(session_settings())


def test_backoff_forever_is_capped_and_never_overflows() -> None:
    backoff = Backoff(FOREVER.retry, rng=random.Random(3))
    delays = [backoff.fail(at_least=FOREVER.quota_wait(Ending(0, "refused"))) or 0.0 for _ in range(3000)]
    assert not backoff.exhausted and backoff.failures == 3000
    assert max(delays) <= FOREVER.max_backoff and min(delays[10:]) >= FOREVER.max_backoff * (1 - FOREVER.jitter)
    with pytest.raises(UsageError):
        ReconnectPolicy(max_attempts=0)
    assert ReconnectPolicy().opening_attempts == 6 and ReconnectPolicy(max_attempts=2).opening_attempts == 2


def test_plain_live_retries_forever_and_the_chain_link_gives_up_sooner() -> None:
    options = BackendOptions(api_key=Secret("k"), live_url="ws://127.0.0.1:9")
    plain = make_backend("live", options)
    assert isinstance(plain, GeminiLiveBackend) and plain.settings.reconnect.max_attempts is None
    chain = make_backend("auto", options)
    assert chain.links[0].backend.settings.reconnect.max_attempts == 2  # type: ignore[attr-defined]
