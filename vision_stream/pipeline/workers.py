"""A shared, bounded pool of decode/encode threads for paced sessions (a camera fleet per core).

One thread per session (the old design) meant 30-50 Python threads decoding
keyframe bursts in step once a second; the event loop then waited for the GIL
behind all of them and stalled 55-70 ms. Here a fixed number of worker threads
(one per usable core) runs every pooled session's work as *steps*: a session is
a generator that does some work (demux, decode, sample, encode, hand over) and
then yields what it waits for next:

- a ``float``: a ``time.monotonic()`` deadline (a paced session's next batch
  is due then); the session is resumed at that time, earliest deadline first,
  so a burst of sessions due together is worked off in deadline order by a
  bounded number of threads instead of all at once (the burst is staggered);
- a ``concurrent.futures.Future``: a lossless hand-over waiting for room; the
  session resumes when it completes, or after ``poll`` seconds to notice a stop.

No thread sleeps per session and no session runs in two threads at once.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..errors import UsageError

__all__ = ["FUTURE_POLL", "PooledTask", "Step", "WorkerPool", "shared_pool"]

log = logging.getLogger(__name__)

# What a step yields: a monotonic deadline or a future to wait for.
Step = float | concurrent.futures.Future[Any]
Steps = Iterator[Step]

# How long a task waiting on a future sleeps at most before it looks again
# (a stop must be noticed even when the future never completes).
FUTURE_POLL = 0.5


class PooledTask:
    """One generator run by a :class:`WorkerPool`; ``finished`` is set when it has ended."""

    def __init__(self, pool: WorkerPool, steps: Steps, name: str) -> None:
        self.name = name
        self.finished = threading.Event()
        self._pool = pool
        self._steps = steps
        self._version = 0  # bumped on every (re)schedule: older heap entries are stale
        self._running = False
        self._woken = False  # wake() arrived while running: resume at once after this step

    def wake(self) -> None:
        """Resume as soon as a worker is free (a stop, a completed hand-over)."""
        self._pool._wake(self)

    def _on_done(self, _future: concurrent.futures.Future[Any]) -> None:
        self.wake()

    def _step(self) -> Step | None:
        """Run until the generator's next wait; None once it has ended."""
        try:
            return next(self._steps)
        except StopIteration:
            return None
        except BaseException:  # the generator handles its own errors; a bug must not kill a worker
            log.exception("pooled task %s failed", self.name)
            return None


class WorkerPool:
    """``workers`` threads running :class:`PooledTask` steps, earliest deadline first."""

    def __init__(self, workers: int, *, name: str = "media-worker", poll: float = FUTURE_POLL) -> None:
        if workers < 1:
            raise UsageError(f"a worker pool needs at least 1 worker, got {workers}")
        self.workers = workers
        self._poll = poll
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, int, PooledTask]] = []
        self._seq = itertools.count()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, steps: Steps, name: str) -> PooledTask:
        """Run ``steps`` (a generator of :data:`Step`) on the pool, starting now."""
        task = PooledTask(self, steps, name)
        with self._cond:
            self._push(task, time.monotonic())
        return task

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers (pending tasks are not run further)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # -- internals (all heap changes under ``_cond``) ------------------------

    def _push(self, task: PooledTask, due: float) -> None:
        task._version += 1
        heapq.heappush(self._heap, (due, next(self._seq), task._version, task))
        self._cond.notify()

    def _wake(self, task: PooledTask) -> None:
        with self._cond:
            if task.finished.is_set():
                return
            if task._running:
                task._woken = True
            else:
                self._push(task, time.monotonic())

    def _next_task(self) -> PooledTask | None:
        """Block until a task is due (or the pool closes: None)."""
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, version, task = self._heap[0]
                if version != task._version:  # rescheduled since: stale entry
                    heapq.heappop(self._heap)
                    continue
                delay = due - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                task._running, task._woken = True, False
                return task
        return None

    def _work(self) -> None:
        while (task := self._next_task()) is not None:
            wait = task._step()
            with self._cond:
                task._running = False
                if wait is None:
                    task._version += 1
                    task.finished.set()
                elif task._woken:
                    self._push(task, time.monotonic())
                elif isinstance(wait, concurrent.futures.Future):
                    self._push(task, time.monotonic() + self._poll)
                    wait.add_done_callback(task._on_done)
                else:
                    self._push(task, wait)


_shared: WorkerPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """The process-wide pool (created on first use): one worker per usable core."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WorkerPool(max(1, len(os.sched_getaffinity(0))))
        return _shared
