"""The one event collector of the tests: reads any async stream of events in an owned task.

Used for a backend session's ``events()``, a pipeline's ``log.follow()`` and a gRPC call's
stream alike; tests wait for conditions on ``events`` with :meth:`Collector.until`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable
from typing import Any, Generic, TypeVar

from helpers.timing import scaled, until

T = TypeVar("T")
P = TypeVar("P")


class Collector(Generic[T]):
    """Appends every event of ``stream`` to ``events`` until the stream ends or :meth:`cancel`."""

    def __init__(self, stream: AsyncIterable[T], *, on_cancel: Callable[[], object] | None = None) -> None:
        self.events: list[T] = []
        self._on_cancel = on_cancel  # e.g. a gRPC call's cancel(): ends the stream at its source
        self.task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: AsyncIterable[T]) -> None:
        async for event in stream:
            self.events.append(event)

    def payloads(self, kind: type[P]) -> list[P]:
        """The payloads of type ``kind``, in order (events with a ``payload``: pipeline and backend events)."""
        found: list[Any] = [getattr(e, "payload", None) for e in self.events]
        return [p for p in found if isinstance(p, kind)]

    async def until(self, predicate: Callable[[], bool], *, within: float = 10.0, what: str = "the condition",
                    every: float = 0.01) -> float:
        """Wait until ``predicate()`` holds (time scaled); fails showing the last events."""
        return await until(predicate, within=within, what=what, every=every, detail=lambda: self.events[-8:])

    async def finish(self, within: float = 10.0) -> list[T]:
        """Wait for the stream to end by itself."""
        await asyncio.wait_for(self.task, scaled(within))
        return self.events

    async def cancel(self) -> None:
        """Stop reading (cancelling the source first when it has a cancel) and wait for the task."""
        if self._on_cancel is not None:
            self._on_cancel()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
