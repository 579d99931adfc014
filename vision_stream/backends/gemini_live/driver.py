"""The Live connection driver: connect with retry, supervise, and one connection's tasks.

A thin asyncio loop around the sans-I/O core (:class:`~.protocol.LiveProtocol`
for messages, :class:`~.schedule.SendSchedule` for what goes next and when to
rotate). A supervisor task owns the current connection; per connection an
:class:`asyncio.TaskGroup` runs a receiver (server frames -> core -> events), a
sender (core -> socket) and a watchdog (asks the core about rotation and
stalls). When a connection ends, the supervisor classifies how
(``endings.py``), resumes with the newest handle after the shared backoff
(``vision_stream.retry``), or gives up: the failure is then kept, with its
verdict, in the session's :class:`~vision_stream.backends.session_core.SessionCore`.

Tool answers are owed exactly once: before a goAway rotation closes the old
connection, the answers (and audio) still queued are written on it, within the
server's ``timeLeft`` (``timeouts.go_away_drain`` at most); an answer whose
write found the connection closed goes back to the queue, and a call lost with
its connection is answered if the server re-issues it, else reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ...errors import BackendError, ServiceError
from ...events import BackendChanged, ErrorEvent
from ...redact import scrub
from ...retry import Backoff
from ..session_core import SessionCore
from .connection import ConnectFailed, ending_of, open_websocket
from .endings import Ending, is_quota_ending, is_transient
from .protocol import BACKEND_NAME, ProtocolEvent, SetupCompleted
from .schedule import SendSchedule
from .settings import LiveSettings

log = logging.getLogger("vision_stream.backends.gemini_live")

_E = TypeVar("_E", bound=BaseException)

Dispatch = Callable[[Sequence[ProtocolEvent]], Awaitable[None]]


class _Ended(Exception):
    """Internal: the current connection is over (how, in ``ending``)."""

    def __init__(self, ending: Ending) -> None:
        super().__init__(ending.label)
        self.ending = ending


class LiveDriver:
    """Connections of one Live session. ``dispatch`` turns core events into session events."""

    def __init__(self, settings: LiveSettings, schedule: SendSchedule, core: SessionCore, dispatch: Dispatch) -> None:
        self._settings = settings
        self._schedule = schedule
        self._protocol = schedule.protocol
        self._core = core
        self._dispatch = dispatch
        self._backoff = Backoff(settings.reconnect.retry)
        self.wakeup = asyncio.Event()  # new input for the sender
        self.supervisor: asyncio.Task[None] | None = None
        # Counters and measurements (bounded).
        self.connection_attempts = 0
        self.reconnects = 0
        self.handles_used: deque[str | None] = deque(maxlen=256)  # handle presented per connection
        self.reconnect_gaps: deque[float] = deque(maxlen=256)  # seconds without a connection
        self.frame_latencies: deque[float] = deque(maxlen=4096)  # seconds, send_frame -> socket

    async def start(self) -> None:
        """Connect (retrying transient failures, ``open_attempts`` at most) and start supervising."""
        ws = await self._retry_connect(None, limit=self._settings.reconnect.opening_attempts)
        self.supervisor = asyncio.create_task(self._supervise(ws), name=f"live-session-{self._core.session_id}")

    async def close(self) -> None:
        """Let the supervisor finish the outstanding turn (bounded by ``close_flush``), then stop it."""
        self.wakeup.set()
        await self._core.close_worker(self.supervisor, self._settings.timeouts.close_flush)
        self._protocol.close()
        for lost in self._protocol.expire_orphaned_calls():  # no connection left to re-issue them
            await self._core.events.put(lost, self._schedule.turn_media_time)

    # ---- connecting ----------------------------------------------------------------------

    async def _retry_connect(
        self, ending: Ending | None, *, limit: int | None, lost_at: float | None = None
    ) -> ClientConnection:
        """The one retry loop: after ``ending`` (None: connect at once), back off and connect
        until it works, a permanent ending, or ``limit`` consecutive failures (None: forever).

        ``lost_at``: when the running session lost its connection (None while
        opening); each failed attempt of an outage is reported.
        """
        while True:
            if ending is not None:
                if not is_transient(ending):
                    what = "refused the connection" if ending.http else "closed the session"
                    raise self._error(f"Gemini Live {what}: ", ending, retryable=False)
                delay = self._backoff.fail(at_least=self._settings.reconnect.quota_wait(ending))
                if delay is None or (limit is not None and self._backoff.failures >= limit):
                    failures = self._backoff.failures
                    attempts = f"{failures} failed connection attempt{'' if failures == 1 else 's'}"
                    gave_up = f"Gemini Live: gave up after {attempts}; last: "
                    raise self._error(gave_up, ending, retryable=True)
                log.info("live connection failed (%s); retrying in %.2f s", ending.label, delay)
                if lost_at is not None:
                    await self._report_attempt(ending, delay, lost_at)
                await asyncio.sleep(delay)
            try:
                return await self._connect_once()
            except ConnectFailed as exc:
                ending = exc.ending

    def _error(self, text: str, ending: Ending, *, retryable: bool) -> ServiceError:
        """The failure ``text`` + ``ending``, with its verdict: quota (and the wait) or not."""
        message = scrub(f"{text}{_bounded(ending.label)}", *self._settings.secrets())
        quota = is_quota_ending(ending)
        return ServiceError(
            message,
            http_status=ending.code if ending.http and ending.code else None,
            close_code=ending.code if not ending.http and ending.code else None,
            retryable=retryable,
            code="quota" if quota else None,
            retry_after=self._settings.reconnect.quota_backoff if quota else None,
        )

    async def _report_attempt(self, ending: Ending, delay: float, lost_at: float) -> None:
        """A retryable ``backend_unavailable`` event per failed attempt, when retrying forever.

        A bounded policy (the failover chain's link) reports once, when it
        gives up; the chain turns that into its own ``backend_changed``.
        """
        if self._settings.reconnect.max_attempts is not None:
            return
        failures = self._backoff.failures
        message = (
            f"Gemini Live unavailable for {time.monotonic() - lost_at:.1f} s ({_bounded(ending.label)}); "
            f"{failures} failed attempt{'' if failures == 1 else 's'}, next in {delay:.2f} s"
        )
        error = ErrorEvent("backend_unavailable", scrub(message, *self._settings.secrets()), retryable=True)
        await self._core.events.put(error)

    async def _connect_once(self) -> ClientConnection:
        self.connection_attempts += 1
        ws = await open_websocket(self._settings)
        handle = self._protocol.handle
        try:
            setup = self._protocol.start_connection()
            self.handles_used.append(handle)
            async with asyncio.timeout(self._settings.timeouts.setup):
                await ws.send(setup)
                done = False
                while not done:
                    events = self._schedule.receive(await ws.recv(), time.monotonic())
                    done = any(isinstance(e, SetupCompleted) for e in events)
                    await self._dispatch(events)
        except ConnectionClosed as exc:
            self._protocol.connection_lost()
            raise ConnectFailed(ending_of(exc, before_setup=True, go_away=False)) from None
        except TimeoutError:
            self._protocol.connection_lost()
            await ws.close()
            raise ConnectFailed(Ending(1006, "no setupComplete in time", before_setup=True, local=True)) from None
        except BaseException:
            self._protocol.connection_lost()
            await ws.close()
            raise
        self._schedule.connected(time.monotonic())
        log.info("live session %s connected (resumed=%s)", self._core.session_id, handle is not None)
        return ws

    # ---- supervisor ----------------------------------------------------------------------

    async def _supervise(self, ws: ClientConnection) -> None:
        async with self._core.guard("live session supervisor"):
            try:
                while True:
                    opened = time.monotonic()
                    ending = await self._serve(ws)
                    lost_at = time.monotonic()
                    abnormal = not ending.local and ending.code != 1000  # answers may be unread
                    await self._dispatch(self._schedule.connection_lost(abnormal=abnormal))
                    if self._core.closing and self._schedule.drained:
                        break
                    if ending.local and ending.reason == "closing":
                        break
                    if ending.go_away:
                        log.info("live connection rotating after goAway")
                        retry_after: Ending | None = None
                    else:
                        if lost_at - opened >= self._settings.reconnect.stable_after:
                            self._backoff.reset()
                        retry_after = ending
                    limit = self._settings.reconnect.max_attempts
                    ws = await self._retry_connect(retry_after, limit=limit, lost_at=lost_at)
                    self.reconnects += 1
                    self.reconnect_gaps.append(time.monotonic() - lost_at)
                    await self._core.events.put(BackendChanged(BACKEND_NAME, BACKEND_NAME, ending.label))
            finally:
                self._protocol.close()

    async def _serve(self, ws: ClientConnection) -> Ending:
        """Run one connection until it ends; returns how (the socket is closed after)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._receiver(ws))
                tasks.create_task(self._sender(ws))
                tasks.create_task(self._watchdog())
        except BaseExceptionGroup as group:
            ended = _first_of(group, _Ended)
            if ended is None:
                await ws.close()
                failure = _first_of(group, BackendError)
                if failure is not None:
                    raise failure from None
                raise
            ending = ended.ending
        else:  # pragma: no cover - the tasks only end by raising
            ending = Ending(1006, "connection tasks ended", local=True)
        if ending.local:
            if ending.go_away:
                await self._write_owed(ws)
            await self._close_draining(ws)  # 1000: our decision (goAway rotation, stall, close)
        return ending

    async def _write_owed(self, ws: ClientConnection) -> None:
        """Before a goAway rotation closes the old connection: write the tool answers
        and audio still queued for it, so a call that came just before the goAway is
        answered where it was asked. Bounded by the server's ``timeLeft`` and
        ``timeouts.go_away_drain``. A write cut by the timeout was handed to the socket
        already (websockets writes the frame before it waits for the buffer to drain)."""
        schedule = self._schedule
        limit = schedule.drain_deadline(time.monotonic(), self._settings.timeouts.go_away_drain)
        try:
            async with asyncio.timeout(limit):
                while (text := schedule.next_owed()) is not None:
                    await ws.send(text)
                    schedule.sent(time.monotonic())
        except ConnectionClosed:
            schedule.unsent()  # still owed: answered if the call is re-issued, else reported
        except TimeoutError:
            log.info("live: goAway drain cut after %.2f s", limit)

    async def _close_draining(self, ws: ClientConnection) -> None:
        """Close with 1000 while still reading: whatever the server sent before it saw
        our close frame (a newer resumption handle, the rest of a turn) is processed,
        so the next connection resumes from the newest handle."""
        closer = asyncio.create_task(ws.close())
        try:
            while True:
                try:
                    frame = await ws.recv()
                except ConnectionClosed:
                    break
                await self._dispatch(self._schedule.receive(frame, time.monotonic()))
        finally:
            await closer

    # ---- per-connection tasks ------------------------------------------------------------

    async def _receiver(self, ws: ClientConnection) -> None:
        while True:
            try:
                frame = await ws.recv()
            except ConnectionClosed as exc:
                raise _Ended(ending_of(exc, before_setup=False, go_away=self._go_away_seen)) from None
            now = time.monotonic()
            await self._dispatch(self._schedule.receive(frame, now))
            self.wakeup.set()  # tool answers, a turn's end: the sender may have work
            if self._schedule.rotation_due(now):
                raise _Ended(Ending(1000, "goAway", go_away=True, local=True))

    async def _sender(self, ws: ClientConnection) -> None:
        schedule = self._schedule
        while True:
            self.wakeup.clear()
            text = schedule.next_outgoing(time.monotonic())
            if text is not None:
                try:
                    await ws.send(text)
                except ConnectionClosed as exc:
                    schedule.unsent()  # closed before the write: a tool answer is still owed
                    raise _Ended(ending_of(exc, before_setup=False, go_away=self._go_away_seen)) from None
                waited = schedule.sent(time.monotonic())
                if waited is not None:
                    self.frame_latencies.append(waited)
                continue
            if self._core.closing and schedule.drained:
                raise _Ended(Ending(1000, "closing", local=True))
            try:
                async with asyncio.timeout(schedule.wait_hint(time.monotonic())):
                    await self.wakeup.wait()
            except TimeoutError:
                pass

    async def _watchdog(self) -> None:
        timeout = self._settings.timeouts.response
        tick = min(0.1, timeout / 10)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            lost = self._schedule.expire_orphans(now)
            if lost:
                await self._dispatch(lost)
            if self._schedule.rotation_due(now):
                raise _Ended(Ending(1000, "goAway deadline", go_away=True, local=True))
            if self._schedule.stalled(now):
                await self._report_stall(silence=timeout)
                raise _Ended(Ending(1006, f"stalled: no answer for {timeout:g} s", local=True))

    async def _report_stall(self, *, silence: float) -> None:
        """A retryable ``stalled`` error event the moment the watchdog trips, before the
        reconnect: the user learns within ``timeouts.response`` seconds that the model
        stopped answering, not when (or whether) the recovery completes."""
        message = (f"Gemini Live stalled: no answer for {silence:g} s after the prompt; "
                   "reconnecting and asking again")
        await self._core.events.put(ErrorEvent("stalled", message, retryable=True), self._schedule.turn_media_time)

    @property
    def _go_away_seen(self) -> bool:
        return self._schedule.go_away_seen


def _bounded(text: str, limit: int = 200) -> str:
    """Server or socket text inside our messages, cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_of(group: BaseExceptionGroup, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in a (nested) exception group."""
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_of(exc, kind)
            if found is not None:
                return found
    return None
