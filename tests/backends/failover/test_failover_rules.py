"""The failover chain's switching rules, against scripted backends (``testing.fake_backend``).

No sockets, no model, no media decoding: each test runs in milliseconds. The
probe schedule is checked twice: as plain numbers on a fake clock
(``LinkHealth``, which reads no clock of its own), and through the running
chain with delays of tens of milliseconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from helpers.events import Collector

from vision_stream.backends.base import BackendCounters, BackendSession
from vision_stream.backends.failover import FailoverBackend, FailoverPolicy, FailoverSession, Link
from vision_stream.backends.failover_health import LinkHealth
from vision_stream.config import SessionSettings
from vision_stream.errors import BackendError, ServiceError, TransportError
from vision_stream.events import BackendChanged, BackendEvent, Commentary
from vision_stream.media.types import SampledFrame
from vision_stream.retry import RetryPolicy, is_quota
from vision_stream.testing.fake_backend import FakeBackend, FakeOpen

MS = 0.001
SETTINGS = SessionSettings(session_id="rules")
# Probes every 20 ms doubling to 80 ms, no jitter: schedules are exact.
FAST = FailoverPolicy(open_timeout=1.0, probe_base=20 * MS, probe_max=80 * MS, probe_jitter=0.0, drain_timeout=1.0)
SLOW_PROBES = FailoverPolicy(open_timeout=1.0, probe_base=10.0, probe_max=10.0, drain_timeout=1.0)
DOWN = TransportError("link lost")
REFUSED = ServiceError("HTTP 503 UNAVAILABLE", status=503, retryable=True, code="unavailable")


def frame(t: float) -> SampledFrame:
    return SampledFrame(media_time=t, jpeg=b"jpeg-%d" % int(t * 1000), width=4, height=4,
                        pixels=np.zeros((4, 4, 3), np.uint8))


class Chain(Collector[BackendEvent]):
    """A failover session over fake links, with its events collected as they come."""

    def __init__(self, session: BackendSession) -> None:
        assert isinstance(session, FailoverSession)
        self.session = session
        super().__init__(session.events())

    def changes(self) -> list[BackendChanged]:
        return self.payloads(BackendChanged)

    def answers(self) -> list[Commentary]:
        return self.payloads(Commentary)

    async def until(self, predicate: Callable[[], bool], *, within: float = 2.0, what: str = "the condition",
                    every: float = MS) -> float:
        """Polls every millisecond: the schedules checked here are tens of milliseconds apart."""
        return await super().until(predicate, within=within, what=what, every=every)

    async def close(self) -> None:
        await self.session.close()
        await self.finish(2.0)


async def open_chain(*backends: FakeBackend, policy: FailoverPolicy = FAST) -> Chain:
    chain = FailoverBackend([Link(b.name, b) for b in backends], policy=policy)
    return Chain(await chain.open(SETTINGS))


# ---- switching down ------------------------------------------------------------------------


async def test_a_send_error_switches_down_once_with_the_error_as_reason() -> None:
    live = FakeBackend("live", FakeOpen(raise_on_frame=2, failure=DOWN))
    rest = FakeBackend("rest")
    chain = await open_chain(live, rest, policy=SLOW_PROBES)
    try:
        await chain.session.send_frame(frame(0.0))
        await chain.session.send_frame(frame(0.5))  # raises inside live: the chain switches
        await chain.until(what="the switch", predicate=lambda: chain.session.name == "rest")
        await chain.session.send_frame(frame(1.0))
    finally:
        await chain.close()
    assert [(c.from_backend, c.to_backend, c.reason) for c in chain.changes()] == [("live", "rest", "live: link lost")]
    assert [f.media_time for f in live.sessions[0].frames] == [0.0]
    # The new link is shown the backlog (live never answered 0.0; 0.5 failed), then the next one.
    assert [f.media_time for f in rest.sessions[0].frames] == [0.0, 0.5, 1.0]
    assert live.sessions[0].closed


async def test_events_ending_unasked_switch_down_once_with_the_last_error_as_reason() -> None:
    live = FakeBackend("live", FakeOpen(fail_after=20 * MS, failure=REFUSED))
    rest = FakeBackend("rest")
    chain = await open_chain(live, rest, policy=SLOW_PROBES)
    try:
        await chain.until(what="the switch", predicate=lambda: bool(chain.changes()))
    finally:
        await chain.close()
    [change] = chain.changes()
    assert (change.from_backend, change.to_backend) == ("live", "rest") and "503" in change.reason
    # The failed link's error event is the reason, not forwarded on its own.
    assert [type(e.payload).__name__ for e in chain.events] == ["BackendChanged"]


@pytest.mark.parametrize(("replay_frames", "shown", "dropped"), [
    (16, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5], 0),  # the whole backlog, in order
    (2, [2.0, 2.5], 3),  # the newest 2; 0.5-1.5 reached no link (0.0 reached live): dropped
])
async def test_while_switching_the_backlog_reaches_the_new_link_and_evictions_are_counted(
        replay_frames: int, shown: list[float], dropped: int) -> None:
    live = FakeBackend("live", FakeOpen(raise_on_prompt=1, failure=DOWN))
    rest = FakeBackend("rest", FakeOpen(open_delay=50 * MS))  # a slow open: frames arrive mid-switch
    chain = await open_chain(live, rest, policy=replace(SLOW_PROBES, replay_frames=replay_frames))
    try:
        await chain.session.send_frame(frame(0.0))
        await chain.session.prompt("", reason="cadence", media_time=0.0)  # live fails here
        for i in range(1, 6):
            await chain.session.send_frame(frame(0.5 * i))
        assert chain.session.name == "live" and not rest.sessions, "frames must arrive mid-switch"
        await chain.until(what="the switch", predicate=lambda: chain.session.name == "rest")
    finally:
        await chain.close()
    assert [f.media_time for f in rest.sessions[0].frames] == shown
    assert chain.session.frames_dropped == dropped
    counters = chain.session.counters()
    assert isinstance(counters, BackendCounters) and counters.frames_dropped == dropped
    assert counters.frames_sent == 1 + len(shown)  # one frame to live, the replay to rest: summed over the links


async def test_the_waiting_prompt_is_the_highest_ranked_and_is_asked_once_on_the_new_link() -> None:
    live = FakeBackend("live", FakeOpen(raise_on_frame=1, failure=DOWN))
    rest = FakeBackend("rest", FakeOpen(open_delay=50 * MS))
    chain = await open_chain(live, rest, policy=SLOW_PROBES)
    try:
        await chain.session.send_frame(frame(0.0))  # live fails: the switch starts
        await chain.session.prompt("", reason="cadence", media_time=0.1)
        await chain.session.prompt("what colour?", reason="client", media_time=0.2)
        await chain.session.prompt("", reason="retry", media_time=0.3)  # ranks below client
        await chain.session.prompt("", reason="cadence", media_time=0.4)
        await chain.until(what="the answer", predicate=lambda: len(chain.answers()) == 1)
    finally:
        await chain.close()
    assert rest.sessions[0].prompts == [("what colour?", "client", 0.2)]
    assert chain.answers()[0].backend == "rest"


async def test_the_failed_links_unanswered_prompt_is_asked_again_on_the_next_link() -> None:
    live = FakeBackend("live", FakeOpen(stall=True, fail_after=30 * MS, failure=DOWN))
    rest = FakeBackend("rest")
    chain = await open_chain(live, rest, policy=SLOW_PROBES)
    try:
        await chain.session.prompt("", reason="scene", media_time=1.0)  # live never answers, then drops
        await chain.until(what="rest's answer", predicate=lambda: bool(chain.answers()))
    finally:
        await chain.close()
    assert live.sessions[0].prompts == rest.sessions[0].prompts == [("", "scene", 1.0)]
    assert [a.turn_id for a in chain.answers()] == ["rest-1"]


async def test_recent_commentary_is_carried_over_to_the_next_link() -> None:
    live = FakeBackend("live", FakeOpen(reply=lambda turn, text, reason: f"a red car ({turn})"))
    rest = FakeBackend("rest")
    chain = await open_chain(live, rest, policy=SLOW_PROBES)
    try:
        await chain.session.prompt("", reason="cadence", media_time=1.0)
        await chain.until(what="live's answer", predicate=lambda: bool(chain.answers()))
        await live.sessions[0]._core.fail(DOWN)  # the link's events end unasked
        live.sessions[0]._core.events.end()
        await chain.until(what="the switch", predicate=lambda: chain.session.name == "rest")
    finally:
        await chain.close()
    assert rest.sessions[0].carried == [(1.0, "a red car (1)")]


async def test_when_every_link_fails_the_chain_fails_with_every_reason() -> None:
    live = FakeBackend("live", FakeOpen(fail_after=10 * MS, failure=DOWN))
    rest = FakeBackend("rest", [FakeOpen(), FakeOpen(error=REFUSED)])
    chain = await open_chain(rest, live, policy=SLOW_PROBES)  # rest first, then live, nothing after
    try:
        await chain.session.send_frame(frame(0.0))
        await chain.until(what="rest", predicate=lambda: True)
        await rest.sessions[0]._core.fail(DOWN)
        rest.sessions[0]._core.events.end()
        await chain.until(what="the chain's failure", predicate=lambda: chain.session.failure is not None)
        with pytest.raises(BackendError, match="every analysis backend failed"):
            await chain.session.send_frame(frame(1.0))
    finally:
        await chain.close()


# ---- probing (fake clock: LinkHealth reads no clock) -----------------------------------------


def test_probe_delays_double_up_to_the_cap_and_reset_when_the_link_answers() -> None:
    health = LinkHealth(RetryPolicy(initial_delay=5.0, max_delay=40.0, jitter=0.0), rng=random.Random(1))
    now = 1000.0
    waits = [health.note_down(0, "refused", now=now, permanent=False, error=REFUSED) for _ in range(6)]
    assert waits == [5.0, 10.0, 20.0, 40.0, 40.0, 40.0]
    assert health.due(1, now + 39.9) is None and health.due(1, now + 40.0) == 0
    assert health.wait(1, now + 30.0) == pytest.approx(10.0)
    health.note_healthy(0)
    assert health.due(1, now) == 0  # healthy links are always due
    assert health.note_down(0, "refused", now=now, permanent=False) == 5.0  # starts over


def test_a_probe_never_comes_before_the_servers_retry_delay() -> None:
    health = LinkHealth(RetryPolicy(initial_delay=0.5, max_delay=2.0, jitter=0.0))
    quota = ServiceError("HTTP 429 RESOURCE_EXHAUSTED", status=429, retryable=True, code="quota", retry_after=34.0)
    assert health.note_down(0, quota.message, now=0.0, permanent=False, error=quota) == 34.0
    down = health.get(0)
    assert down is not None and down.quota and down.next_probe == 34.0
    assert health.due(1, 33.9) is None and health.due(1, 34.0) == 0
    # Our own backoff wins when it is the later one.
    short = ServiceError("busy", status=503, retryable=True, retry_after=0.1)
    for _ in range(3):
        wait = health.note_down(0, short.message, now=100.0, permanent=False, error=short)
    assert wait == 2.0


def test_a_permanent_failure_starts_further_along_the_backoff() -> None:
    health = LinkHealth(RetryPolicy(initial_delay=1.0, max_delay=300.0, jitter=0.0), permanent_penalty=3)
    bad_key = ServiceError("API key not valid", status=400, retryable=False, code="api_key_invalid")
    assert health.note_down(0, bad_key.message, now=0.0, permanent=True, error=bad_key) == 8.0  # 1 s doubled 3 times


def test_quota_is_read_from_the_errors_verdict_never_from_its_text() -> None:
    assert is_quota(ServiceError("1011", status=1011, code="quota"))
    assert is_quota(ServiceError("daily", status=429, code="quota_per_day"))
    assert not is_quota(ServiceError("You exceeded your current quota (rate limit)", status=1011))
    assert not is_quota(None)


def test_jittered_probe_delays_stay_within_the_jitter_band() -> None:
    policy = FailoverPolicy(probe_base=5.0, probe_max=300.0, probe_jitter=0.2)
    health = LinkHealth(policy.probe, rng=random.Random(7))
    for failures in range(1, 10):
        wait = health.note_down(0, "x", now=0.0, permanent=False)
        base = min(300.0, 5.0 * 2 ** (failures - 1))
        assert base * 0.8 <= wait <= min(300.0, base * 1.2)


# ---- probing and switching up (the running chain) --------------------------------------------


async def test_a_refused_link_is_probed_with_doubling_backoff_until_it_opens() -> None:
    live = FakeBackend("live", [FakeOpen(error=REFUSED)] * 4 + [FakeOpen()])
    rest = FakeBackend("rest")
    chain = await open_chain(live, rest)  # probes after 20, 40, 80, 80 ms
    try:
        await chain.until(what="back to live", predicate=lambda: chain.session.name == "live")
    finally:
        await chain.close()
    gaps = np.diff(live.opened_at)
    assert len(live.opened_at) == 5
    for gap, expected in zip(gaps, [0.02, 0.04, 0.08, 0.08], strict=True):
        assert expected - 2 * MS <= gap < expected + 0.1, gaps
    assert [(c.from_backend, c.to_backend) for c in chain.changes()] == [("live", "rest"), ("rest", "live")]
    assert "healthy" in chain.changes()[1].reason


async def test_a_quota_refusal_waits_for_the_servers_retry_delay() -> None:
    quota = ServiceError("HTTP 429 RESOURCE_EXHAUSTED", status=429, retryable=True, code="quota",
                         retry_after=0.15)
    live = FakeBackend("live", [FakeOpen(error=quota), FakeOpen()])
    rest = FakeBackend("rest")
    chain = await open_chain(live, rest)  # our own backoff would probe after 20 ms
    try:
        await chain.until(what="back to live", predicate=lambda: chain.session.name == "live")
    finally:
        await chain.close()
    assert live.opened_at[1] - live.opened_at[0] >= 0.15 - 2 * MS


async def test_switching_up_lets_the_old_link_finish_its_running_turn_first() -> None:
    live = FakeBackend("live", [FakeOpen(error=REFUSED), FakeOpen(open_delay=10 * MS)])
    rest = FakeBackend("rest", FakeOpen(answer_delay=150 * MS))
    chain = await open_chain(live, rest)
    try:
        await chain.session.prompt("", reason="cadence", media_time=1.0)  # rest is mid-turn at the switch
        await chain.until(what="back to live", predicate=lambda: len(chain.changes()) == 2)
    finally:
        await chain.close()
    kinds = [(type(e.payload).__name__, getattr(e.payload, "backend", "")) for e in chain.events]
    assert kinds == [("BackendChanged", ""), ("Commentary", "rest"), ("BackendChanged", "")]
    assert live.sessions[0].prompts == []  # the turn was answered once, by rest
    assert rest.sessions[0].closed


# ---- closing -------------------------------------------------------------------------------


async def test_a_link_failing_on_the_closing_prompt_hands_it_down_the_chain() -> None:
    live = FakeBackend("live", FakeOpen(fail_on_answer=1, answer_delay=20 * MS, failure=DOWN))
    rest = FakeBackend("rest", FakeOpen(reply=lambda turn, text, reason: f"summary ({reason})"))
    chain = await open_chain(live, rest, policy=SLOW_PROBES)
    await chain.session.prompt("", reason="final", media_time=9.0)
    await chain.close()  # live fails answering while the chain closes it
    assert [(c.from_backend, c.to_backend) for c in chain.changes()] == [("live", "rest")]
    assert [(a.backend, a.text) for a in chain.answers()] == [("rest", "summary (final)")]
    assert rest.sessions[0].prompts == [("", "final", 9.0)] and rest.sessions[0].closed
