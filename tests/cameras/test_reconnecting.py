"""ReconnectingSource with scripted connections (no network): reconnects, watchdog, media time, policy."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from vision_stream.errors import SourceOpenError, UsageError
from vision_stream.media.reconnecting import ConnectionOptions, ReconnectingSource
from vision_stream.media.types import AudioChunk, BadPacket, MediaItem, SourceStatus, VideoFrame
from vision_stream.retry import Backoff, RetryPolicy

FAST = RetryPolicy(initial_delay=0.01, max_delay=0.05, jitter=0.0)


def frame(t: float) -> VideoFrame:
    return VideoFrame.from_bgr(np.zeros((4, 4, 3), np.uint8), media_time=t)


class Scripted:
    """A connection that yields a script of items (callables run in between), then ends or raises."""

    def __init__(self, script: list[object], end: BaseException | None = None) -> None:
        self.script = script
        self.end = end
        self.closed = False
        self.interrupted = False

    def items(self, should_stop: Callable[[], bool]) -> Iterator[MediaItem]:
        for step in self.script:
            if should_stop():
                return
            if callable(step):
                step()
                continue
            yield step  # type: ignore[misc]
        if self.end is not None:
            raise self.end

    def interrupt(self) -> None:
        self.interrupted = True

    def close(self) -> None:
        self.closed = True


def run(source: ReconnectingSource, limit: int = 1000) -> list[MediaItem]:
    out = []
    for item in source.items():
        out.append(item)
        if len(out) >= limit:
            source.close()
    return out


def states(items: list[MediaItem]) -> list[str]:
    return [i.state for i in items if isinstance(i, SourceStatus)]


def test_backoff_is_capped_jittered_exponential_and_resets() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=8, multiplier=2, jitter=0.25, max_attempts=6)
    backoff = Backoff(policy, rng=random.Random(1))
    delays = [backoff.fail() for _ in range(6)]
    assert delays[-1] is None and backoff.exhausted
    for delay, base in zip(delays[:5], (1, 2, 4, 8, 8), strict=True):
        assert delay is not None and base * 0.75 <= delay <= min(8, base * 1.25)
    backoff.reset()
    first = backoff.fail()
    assert first is not None and first <= 1.25


def test_policy_and_options_validate() -> None:
    with pytest.raises(UsageError, match="max_delay"):
        RetryPolicy(initial_delay=5, max_delay=1)
    with pytest.raises(UsageError, match="transport"):
        ConnectionOptions(transport="sctp")
    with pytest.raises(UsageError, match="read_timeout"):
        ConnectionOptions(read_timeout=0)


def test_end_of_stream_is_a_disconnect_and_media_time_keeps_growing() -> None:
    connections = [
        Scripted([frame(10.0), frame(10.1), frame(10.2)]),  # each connection restarts its clock
        Scripted([frame(0.0), frame(0.1)]),
        Scripted([frame(5.0), frame(5.1)], end=SourceOpenError("reset", retryable=True)),
    ]

    def connect() -> Scripted:
        if not connections:
            raise SourceOpenError("gone", retryable=False)
        return connections.pop(0)

    items = run(ReconnectingSource(description="cam", connect=connect, options=ConnectionOptions(reconnect=FAST)))
    assert states(items) == ["connecting", "streaming", "reconnecting", "streaming", "reconnecting",
                             "streaming", "reconnecting", "failed"]
    times = [i.media_time for i in items if isinstance(i, VideoFrame)]
    assert times[0] == 0.0 and times == sorted(times) and len(set(times)) == len(times)
    recovered = [i for i in items if isinstance(i, SourceStatus) and i.state == "streaming"][1:]
    assert all(s.outage_seconds >= 0 and "back after" in s.message for s in recovered)
    failed = items[-1]
    assert isinstance(failed, SourceStatus) and not failed.retryable and "gone" in failed.message


def test_permanent_error_fails_at_once_and_attempts_are_bounded() -> None:
    def refused() -> Scripted:
        raise SourceOpenError("cannot open cam: connection refused", retryable=True)

    policy = RetryPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3)
    items = run(ReconnectingSource(description="cam", connect=refused, options=ConnectionOptions(reconnect=policy)))
    assert states(items) == ["connecting", "reconnecting", "reconnecting", "failed"]
    assert "gave up after 3 attempts" in items[-1].message  # type: ignore[union-attr]
    waits = [i.next_attempt_in for i in items if isinstance(i, SourceStatus) and i.state == "reconnecting"]
    assert all(w is not None and 0 < w <= 0.02 for w in waits)

    def unauthorized() -> Scripted:
        raise SourceOpenError("cannot open cam: authentication failed", retryable=False)

    options = ConnectionOptions(reconnect=policy)
    items = run(ReconnectingSource(description="cam", connect=unauthorized, options=options))
    assert states(items) == ["connecting", "failed"]


def test_watchdog_drops_a_connection_whose_frames_stopped() -> None:
    # Packets keep coming (bad ones), frames do not: the watchdog, not a read timeout, ends it.
    def stalled() -> Iterator[object]:
        yield frame(0.0)
        for _ in range(200):
            yield lambda: time.sleep(0.005)
            yield BadPacket(None, "garbage")

    made: list[Scripted] = []

    def connect() -> Scripted:
        if len(made) == 2:
            raise SourceOpenError("done", retryable=False)
        made.append(Scripted(list(stalled())))
        return made[-1]

    options = ConnectionOptions(stall_timeout=0.2, reconnect=FAST)
    source = ReconnectingSource(description="cam", connect=connect, options=options)
    started = time.monotonic()
    items = run(source)
    assert time.monotonic() - started < 2.0
    messages = [i.message for i in items if isinstance(i, SourceStatus) and i.state == "reconnecting"]
    assert source.stalls == 2 and all("stalled" in m for m in messages)
    assert all(c.closed for c in made)


def test_audio_only_stream_feeds_the_watchdog_and_audio_time_is_continuous() -> None:
    def chunks(start: float) -> list[object]:
        return [AudioChunk(pcm=bytes(1600), media_time=start + 0.05 * i) for i in range(10)]

    queue = [Scripted(chunks(3.0)), Scripted(chunks(0.0))]

    def connect() -> Scripted:
        if not queue:
            raise SourceOpenError("done", retryable=False)
        return queue.pop(0)

    items = run(ReconnectingSource(description="mic", connect=connect, options=ConnectionOptions(reconnect=FAST)))
    audio = [i for i in items if isinstance(i, AudioChunk)]
    assert len(audio) == 20
    ends = [a.media_time + a.duration for a in audio]
    assert all(b.media_time >= e - 1e-9 for e, b in zip(ends, audio[1:], strict=False))


def test_close_from_another_thread_ends_items_during_backoff() -> None:
    import threading

    def refused() -> Scripted:
        raise SourceOpenError("refused", retryable=True)

    policy = RetryPolicy(initial_delay=30, max_delay=30)
    source = ReconnectingSource(description="cam", connect=refused, options=ConnectionOptions(reconnect=policy))
    threading.Timer(0.2, source.close).start()
    started = time.monotonic()
    items = run(source)
    assert time.monotonic() - started < 2.0
    assert states(items) == ["connecting", "reconnecting"]
