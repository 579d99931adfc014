"""The shared worker pool: deadlines, earliest-deadline-first, futures, wake-ups; and a
fleet of paced sessions on it (no thread per session, same decisions as a fast replay)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.clips import make_clip

from vision_stream.backends.local import LocalBackend
from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from vision_stream.errors import UsageError
from vision_stream.events import SessionEnded
from vision_stream.media.file_source import FileSource
from vision_stream.pipeline import Session
from vision_stream.pipeline.workers import Step, WorkerPool, shared_pool


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    p = WorkerPool(1, name="test-worker", poll=0.05)
    yield p
    p.close()


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(UsageError, match="at least 1 worker"):
        WorkerPool(0)


def test_a_step_resumes_at_its_deadline_not_before(pool: WorkerPool) -> None:
    resumed: list[float] = []

    def steps() -> Iterator[Step]:
        for _ in range(3):
            deadline = time.monotonic() + 0.05
            yield deadline
            resumed.append(time.monotonic() - deadline)

    task = pool.submit(steps(), "t")
    assert task.finished.wait(5)
    assert len(resumed) == 3
    assert all(0 <= late < 0.05 for late in resumed)


def test_due_tasks_run_earliest_deadline_first(pool: WorkerPool) -> None:
    order: list[str] = []
    base = time.monotonic() + 0.1  # all three wait; the one worker then takes them by deadline

    def steps(name: str, offset: float) -> Iterator[Step]:
        yield base + offset
        order.append(name)

    tasks = [pool.submit(steps(n, o), n) for n, o in (("late", 0.03), ("early", 0.0), ("middle", 0.015))]
    assert all(t.finished.wait(5) for t in tasks)
    assert order == ["early", "middle", "late"]


def test_a_future_wait_resumes_when_the_future_completes(pool: WorkerPool) -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    got: list[int] = []

    def steps() -> Iterator[Step]:
        while not future.done():
            yield future
        got.append(future.result())

    task = pool.submit(steps(), "t")
    threading.Timer(0.02, future.set_result, (7,)).start()
    assert task.finished.wait(5)
    assert got == [7]


def test_wake_resumes_a_task_before_its_deadline(pool: WorkerPool) -> None:
    stop = threading.Event()

    def steps() -> Iterator[Step]:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            yield deadline

    task = pool.submit(steps(), "t")
    time.sleep(0.02)
    stop.set()
    task.wake()
    assert task.finished.wait(2)


async def test_a_fleet_of_paced_sessions_shares_the_pool(tmp_path: Path) -> None:
    """8 paced sessions: no thread per session, every session paced, nothing dropped."""
    clip = make_clip(tmp_path / "c.mp4", seconds=1.5, fps=20, gop=10, audio=True)
    sampling = SamplingPolicy(fps=2, max_fps=4)
    sessions = [
        Session(settings=SessionSettings(session_id=f"s{i}"),
                source=FileSource(clip, audio=AudioPolicy(), sample_interval=1 / sampling.fps),
                backend=LocalBackend(), sampling=sampling, limits=Limits(), paced=True, lossless=False)
        for i in range(8)
    ]
    started = time.monotonic()
    runners = [asyncio.create_task(s.run()) for s in sessions]
    await asyncio.sleep(0.5)
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith("source-")]
    assert len([n for n in names if n.startswith("media-worker")]) == shared_pool().workers
    await asyncio.wait_for(asyncio.gather(*runners), 20)
    assert time.monotonic() - started >= 1.3  # paced: about the clip's length, not as fast as possible
    for s in sessions:
        end = s.log.snapshot()[-1].payload
        assert isinstance(end, SessionEnded) and end.reason == "end_of_input"
        assert end.totals.frames_dropped == 0 and end.totals.frames_sent >= 3
