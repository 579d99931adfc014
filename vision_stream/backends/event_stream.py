"""A backend session's event output: bounded, ordered, ended explicitly.

Every backend (live, REST, offline, the failover chain) hands its events to
the pipeline the same way: producers ``await put(...)`` (backpressure when the
consumer lags, nothing dropped), one consumer iterates, and ``end()`` lets
the consumer finish after what is already queued.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ..errors import UsageError
from ..events import BackendEvent, Payload


class EventStream:
    """One session's events: bounded (``maxsize``), in order, ended by :meth:`end`."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise UsageError(f"event stream maxsize must be >= 1, got {maxsize}")
        self._queue: asyncio.Queue[BackendEvent | None] = asyncio.Queue(maxsize=maxsize)
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    async def put(self, payload: Payload, media_time: float | None = None) -> None:
        """Queue one event, waiting while the queue is full."""
        await self._queue.put(BackendEvent(payload, media_time))

    async def put_event(self, event: BackendEvent) -> None:
        """Queue an event another backend produced (the failover chain forwards these)."""
        await self._queue.put(event)

    def end(self) -> None:
        """No more events: the consumer stops once the queue is drained. Idempotent."""
        self._ended = True
        # Wake a consumer waiting on an empty queue; with a full queue the
        # consumer drains it and then sees ``ended``.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[BackendEvent]:
        while True:
            if self._ended and self._queue.empty():
                return
            item = await self._queue.get()
            if item is None:
                if self._ended and self._queue.empty():
                    return
                continue
            yield item
