"""A sink's filter and bounded queue, and the hub that feeds sinks from sessions' event logs.

Never blocking a session is the point: the hub follows each session's
:class:`~vision_stream.events.EventLog` the way ``Subscribe`` does (a cursor,
no queue of the log's own), and hands each event to every sink with
:meth:`Sink.offer`, which never waits: past the sink's ``queue`` bound the
oldest waiting event is dropped (counted in ``vision_stream_sink_events_total
{outcome="dropped"}`` and logged). Each sink delivers from its queue in its own
task, so a dead or hanging target only ever fills its own queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..events import Event
from ..metrics import sink_outcome
from .config import MqttSinkConfig, SinkConfig, WebhookSinkConfig

if TYPE_CHECKING:
    from ..pipeline import Session
    from ..server.registry import SessionRegistry

__all__ = ["Sink", "SinkHub", "build_sink"]

log = logging.getLogger(__name__)

# How often the hub looks for new sessions; a session's events are never
# missed in between: its follower starts from the log's first retained event.
_SCAN_INTERVAL = 0.2
# Log the first drop of a sink, then one line per this many.
_DROP_LOG_EVERY = 100


class Sink:
    """One configured sink: filter, bounded queue, delivery task. Subclasses implement :meth:`run`."""

    def __init__(self, config: SinkConfig) -> None:
        self.config = config
        self.name = config.name
        self._queue: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self._poked = False
        self._idle = asyncio.Event()
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None

    def offer(self, event: Event) -> None:
        """Queue ``event`` if the filter takes it; never waits (drops the oldest past the bound)."""
        if not self.config.filter.accepts(event):
            return
        if len(self._queue) >= self.config.queue:
            self._queue.popleft()
            self.note_dropped()
        self._queue.append(event)
        self._idle.clear()
        self._ready.set()

    def note_dropped(self) -> None:
        self.dropped += 1
        sink_outcome(self.name, "dropped")
        if self.dropped == 1 or self.dropped % _DROP_LOG_EVERY == 0:
            log.warning("sink %s: queue full (%d events): %d dropped so far", self.name, self.config.queue,
                        self.dropped)

    def note_delivered(self) -> None:
        self.delivered += 1
        sink_outcome(self.name, "delivered")

    def note_failed(self, why: str) -> None:
        self.failed += 1
        sink_outcome(self.name, "failed")
        log.warning("sink %s: gave up on an event: %s", self.name, why)

    async def next_event(self) -> Event | None:
        """The oldest waiting event (waits for one); None when :meth:`poke` woke the sink instead."""
        while not self._queue:
            self._idle.set()  # asked for more with nothing waiting: all before was delivered or given up
            if self._poked:
                self._poked = False
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def poke(self) -> None:
        """Wake the delivery task without an event (it has other work: MQTT discovery)."""
        self._poked = True
        self._ready.set()

    def requeue(self, event: Event) -> None:
        """Put ``event`` back at the head (a connection dropped before it went out)."""
        if len(self._queue) >= self.config.queue:
            self.note_dropped()
            return
        self._queue.appendleft(event)
        self._idle.clear()
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def session_seen(self, session_id: str, *, camera: bool) -> None:
        """The hub started following ``session_id`` (``camera``: a configured camera) for this sink."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._guarded(), name=f"sink-{self.name}")

    async def _guarded(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a sink must not take the server down
            log.exception("sink %s stopped", self.name)

    async def run(self) -> None:
        raise NotImplementedError

    async def close(self, grace: float) -> None:
        """Give the queue up to ``grace`` seconds to drain, then stop."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        await self.stop()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def build_sink(config: SinkConfig) -> Sink:
    """The sink for ``config`` (imports its transport only when configured)."""
    if isinstance(config, WebhookSinkConfig):
        from .webhook import WebhookSink

        return WebhookSink(config)
    if isinstance(config, MqttSinkConfig):
        from .mqtt import MqttSink

        return MqttSink(config)
    raise TypeError(f"unknown sink config {type(config).__name__}")


class SinkHub:
    """Feeds configured sinks from the server's sessions; started and stopped with the server."""

    def __init__(self, registry: SessionRegistry, configs: Sequence[SinkConfig]) -> None:
        self.registry = registry
        self.sinks = [build_sink(config) for config in configs]
        self._followers: dict[Session, asyncio.Task[None]] = {}  # listed sessions -> their follower
        self._scanner: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not self.sinks:
            return
        for sink in self.sinks:
            sink.start()
        self._scanner = asyncio.create_task(self._scan(), name="sinks-scan")

    async def _scan(self) -> None:
        from ..server.auth import ANONYMOUS  # every right: sees every session

        while True:
            listed = self.registry.list(principal=ANONYMOUS)
            for gone in set(self._followers) - set(listed):  # dropped from the registry: forget it
                self._followers.pop(gone).cancel()
            for session in listed:
                if session in self._followers:
                    continue
                sinks = [sink for sink in self.sinks if sink.config.follows(session.session_id)]
                # Sessions no sink follows get a finished placeholder, so they are not looked at again.
                self._followers[session] = asyncio.create_task(self._follow(session, sinks),
                                                               name=f"sinks-{session.session_id}")
            await asyncio.sleep(_SCAN_INTERVAL)

    async def _follow(self, session: Session, sinks: list[Sink]) -> None:
        if not sinks:
            return
        camera = self.registry.ownership(session.session_id).owner is None  # server-owned: a configured camera
        for sink in sinks:
            sink.session_seen(session.session_id, camera=camera)
        # allow_gap: a follower that fell behind the retention window skips ahead instead of failing.
        async for event in session.log.follow(0, allow_gap=True):
            for sink in sinks:
                sink.offer(event)

    async def close(self, grace: float = 1.0) -> None:
        """Stop following; give each sink up to ``grace`` seconds to deliver what it holds."""
        if self._scanner is not None:
            self._scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scanner
        # Followers of ended sessions finish by themselves (their logs closed); the rest stop here.
        for task in self._followers.values():
            task.cancel()
        for task in self._followers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(sink.close(grace) for sink in self.sinks))
