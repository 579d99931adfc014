"""The failover chain: live → REST → offline, and back when a better link is healthy again.

The chain is itself a :class:`~vision_stream.backends.base.Backend`; it sees
its links only through that contract (it cannot tell live, REST and offline
apart), so any ordered list of backends works.

::

    pipeline ──send_*/prompt──▶ FailoverSession ──▶ current link's session
                                      │  (while switching: frames dropped and counted, one prompt kept)
    events() ◀── one bounded queue ◀── pump of the current (and of a retiring) session
                                      ▲
                 probe task: reopens better links (failover_health schedules it); switch-up when one opens

Rules (issue 4, DESIGN.md "Failure model"):

* A link *fails* when its ``send_*``/``prompt`` raises
  :class:`~vision_stream.errors.BackendError` or its ``events()`` ends while we
  did not close it. The live link retries transient failures itself (a
  goAway, one drop) and fails after repeated ones or a permanent one; the
  chain then opens the next link that opens.
* Each switch is exactly one ``BackendChanged(from, to, reason)`` event. The
  failed link's final ``error`` event is not forwarded: its message *is* the
  reason.
* Nothing piles up, and the chain keeps no frame queue of its own (the
  pipeline's mailbox is the one latest-wins point): while switching, a frame
  that cannot be forwarded is dropped (counted in ``frames_dropped`` once a
  newer one supersedes it); only a reference to the newest frame is kept, to
  show the new link. One prompt waits (``prompts.replaces``: final > client >
  scene = retry > cadence). After a switch the new link gets the newest frame,
  the waiting prompt or else the failed link's unanswered prompt (asked once
  more: no turn lost, none asked twice), and recent commentary (when the
  session :class:`~vision_stream.backends.base.CarriesOver`, so the REST
  narrative continues).
* Events of every link go through this one queue, so the session's event log
  numbers them without gaps; a failed link is drained before the switch event,
  and on a switch-up the old link finishes its running turn (bounded by
  ``drain_timeout``) before the new link's events flow.
* Probing (``failover_health``): a failed link is reopened after a doubling,
  capped, jittered backoff and never before the server's retry delay (the
  error's ``retry_after``: of the error raised, of the session's ``failure``
  when its events ended, or of a refused open). Opening is the probe (the live
  link connects and sets up; the REST link refuses at once while its key is
  bad, its daily quota is gone or a long hold is in force), so probes never
  cost model turns.
* Every task (pumps, switches, probe, retiring closes) is owned here and
  finished or cancelled by ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import SessionSettings
from ..errors import BackendError, SessionError, UsageError
from ..events import BackendChanged, BackendEvent, Commentary, ErrorEvent
from ..media.types import AudioChunk, SampledFrame
from ..retry import RetryPolicy
from .base import Backend, BackendCounters, BackendSession, CarriesOver
from .failover_health import LinkHealth
from .prompts import replaces
from .session_core import SessionCore

__all__ = ["FailoverBackend", "FailoverPolicy", "FailoverSession", "Link"]

log = logging.getLogger("vision_stream.backends.failover")

_Prompt = tuple[str, str, float | None]  # (text, reason, media time)


@dataclass(frozen=True, kw_only=True, slots=True)
class FailoverPolicy:
    """How the chain switches and probes. Seconds.

    open_timeout: longest a link may take to open (connect + setup) before it counts as failed.
    probe_base / probe_max / probe_jitter: probe backoff of failed links (delay doubles per failure).
    permanent_penalty: extra doublings for a permanent failure (bad key, unknown model).
    drain_timeout: how long a switch waits for the old link's last events.
    event_queue: events buffered for the consumer before links wait.
    carry_over: recent final commentary items handed to the next link.
    """

    open_timeout: float = 15.0
    probe_base: float = 5.0
    probe_max: float = 300.0
    probe_jitter: float = 0.2
    permanent_penalty: int = 3
    drain_timeout: float = 5.0
    event_queue: int = 1024
    carry_over: int = 6

    def __post_init__(self) -> None:
        if min(self.open_timeout, self.probe_base, self.drain_timeout) <= 0:
            raise UsageError("open_timeout, probe_base and drain_timeout must be > 0 seconds")
        if self.probe_max < self.probe_base:
            raise UsageError("probe_max must be >= probe_base")
        if not 0 <= self.probe_jitter <= 1 or self.permanent_penalty < 0:
            raise UsageError("probe_jitter must be in [0, 1], permanent_penalty >= 0")
        if self.event_queue < 1 or self.carry_over < 0:
            raise UsageError("event_queue must be >= 1 and carry_over >= 0")

    @property
    def probe(self) -> RetryPolicy:
        """The probe backoff as the one retry policy (doubling, capped, jittered, forever)."""
        return RetryPolicy(initial_delay=self.probe_base, max_delay=self.probe_max, multiplier=2.0,
                           jitter=self.probe_jitter)


@dataclass(frozen=True, slots=True)
class Link:
    """One link of the chain: the name used in ``backend_changed`` events, and its backend."""

    name: str
    backend: Backend


@dataclass(eq=False, slots=True)
class _Active:
    index: int
    name: str
    session: BackendSession
    pump: asyncio.Task[None] | None = None
    last_prompt: _Prompt | None = None
    answered: bool = True
    failing: bool = False
    failure: BackendError | None = None  # why it failed, when an error object said so
    absorbed: bool = False  # its counters moved into the chain's totals
    closing: bool = False  # the chain is closing it at the end of the session


class FailoverBackend:
    """Opens :class:`FailoverSession` s over ``links`` (best first, e.g. live, rest, local)."""

    def __init__(self, links: Sequence[Link], *, policy: FailoverPolicy | None = None) -> None:
        if not links:
            raise UsageError("a failover chain needs at least one link")
        self.links = tuple(links)
        self.policy = policy or FailoverPolicy()
        self.name = self.links[0].name

    def __repr__(self) -> str:
        return f"FailoverBackend({' -> '.join(link.name for link in self.links)}, {self.policy!r})"

    async def open(self, settings: SessionSettings) -> FailoverSession:
        """Open the best link that opens; raises the last link's error when none does."""
        session = FailoverSession(self.links, settings, self.policy)
        await session.start()
        return session


class FailoverSession:
    """A :class:`BackendSession` that runs on whichever link of the chain is healthy (see module).

    This class is the session's face (inputs, output, counters, close); the
    switching itself (pumps, switch down and up, probing) is :class:`_Switcher`.
    """

    def __init__(self, links: Sequence[Link], settings: SessionSettings, policy: FailoverPolicy) -> None:
        self._core = SessionCore(label="failover session", session_id=settings.session_id,
                                 event_queue=policy.event_queue)
        self._chain = _Switcher(tuple(links), settings, policy, self._core, on_current=self._on_current)
        # BackendSession attributes: the current link's name and model (updated at each switch).
        self.name = links[0].name
        self.model = ""
        self.frames_dropped = 0
        self.audio_chunks_dropped = 0

    # ---- what the pipeline and tests read --------------------------------------------------

    def _on_current(self, active: _Active) -> None:
        self.name = active.name
        self.model = active.session.model

    @property
    def current_index(self) -> int | None:
        current = self._chain.current
        return current.index if current is not None else None

    @property
    def switches(self) -> int:
        return self._chain.switches

    @property
    def switch_log(self) -> deque[tuple[float, str, str, str]]:
        """Recent switches: (monotonic time, from, to, reason)."""
        return self._chain.switch_log

    @property
    def failure(self) -> BackendError | None:
        """Why the whole chain failed (every link did), or None while it runs."""
        return self._core.failure

    async def start(self) -> None:
        await self._chain.start()

    # ---- input ---------------------------------------------------------------------------

    async def send_frame(self, frame: SampledFrame) -> None:
        """Forward to the current link. While switching a frame is not forwarded; it is dropped
        (counted) when a newer one supersedes it, and the newest is shown to the new link."""
        self._core.check_usable()
        chain = self._chain
        if not chain.latest_forwarded:
            self.frames_dropped += 1
        chain.latest_frame = frame
        chain.latest_forwarded = await chain.forward(lambda s: s.send_frame(frame))

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Forward to the current link; dropped (counted) while switching."""
        self._core.check_usable()
        if not await self._chain.forward(lambda s: s.send_audio(chunk)):
            self.audio_chunks_dropped += 1

    async def end_audio(self) -> None:
        self._core.check_usable()
        await self._chain.forward(lambda s: s.end_audio())

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        self._core.check_usable()
        await self._chain.forward(lambda s: s.send_tool_result(call_id, name, response))

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Forward to the current link (remembered until answered); one waits while switching."""
        self._core.check_usable()
        await self._chain.ask((text, reason, media_time))

    def carry_over(self, commentary: Sequence[tuple[float | None, str]]) -> None:
        """Seed the recent commentary (for chains inside chains)."""
        self._chain.commentary.extend(commentary)

    # ---- output --------------------------------------------------------------------------

    def events(self) -> AsyncIterator[BackendEvent]:
        """Every link's events in order, with a ``backend_changed`` at each switch."""
        return aiter(self._core.events)

    def counters(self) -> BackendCounters:
        """Counts of every link so far (summed) plus the chain's own drops."""
        own = BackendCounters(frames_dropped=self.frames_dropped, audio_chunks_dropped=self.audio_chunks_dropped)
        return self._chain.link_counters() + own

    async def close(self) -> None:
        """Finish a running switch, flush the current link, end ``events()``. Idempotent."""
        if self._core.begin_close():
            await self._chain.close()


class _Switcher:
    """The chain's switching machinery: which link is current, its pump, switch down, probe, switch up."""

    def __init__(self, links: tuple[Link, ...], settings: SessionSettings, policy: FailoverPolicy,
                 core: SessionCore, *, on_current: Callable[[_Active], None]) -> None:
        self._links = links
        self._settings = settings
        self._policy = policy
        self._core = core
        self._health = LinkHealth(policy.probe, permanent_penalty=policy.permanent_penalty)
        self._lock = asyncio.Lock()  # one switch at a time
        self.current: _Active | None = None
        self._switching = False
        self.latest_frame: SampledFrame | None = None  # only to show the newest frame to a new link
        self.latest_forwarded = True  # the newest frame reached a link (else a newer one drops it)
        self._pending_prompt: _Prompt | None = None
        self.commentary: deque[tuple[float | None, str]] = deque(maxlen=max(1, policy.carry_over))
        self._prober = _Prober(self._health, self._probe_open, below=self._probe_limit)
        self._tasks: set[asyncio.Task[Any]] = set()  # switches and retiring closes
        self._finished = False  # close() is done with the links: no more switching or probing
        self._retired = BackendCounters()
        self.switches = 0
        self.switch_log: deque[tuple[float, str, str, str]] = deque(maxlen=256)  # (monotonic, from, to, reason)
        self._on_current = on_current

    def _make_current(self, active: _Active | None) -> None:
        self.current = active
        if active is not None:
            self._on_current(active)

    def _probe_limit(self) -> int:
        """Links better than this index are probed (0: the best link is current, or the chain ended)."""
        current = self.current
        return 0 if current is None or self._finished else current.index

    def link_counters(self) -> BackendCounters:
        current = self.current
        if current is None or current.absorbed:
            return self._retired
        return self._retired + current.session.counters()

    # ---- opening links -------------------------------------------------------------------

    async def start(self) -> None:
        reasons: list[str] = []
        last_error: BaseException | None = None
        for index, link in enumerate(self._links):
            try:
                session = await self._open_link(index)
            except BackendError as exc:
                reasons.append(f"{link.name}: {exc.message}")
                last_error = exc
                continue
            if index > 0:
                await self._announce(self._links[0].name, link.name, "; ".join(reasons))
            self._begin(_Active(index, link.name, session))
            self._prober.ensure()
            return
        assert last_error is not None
        raise last_error

    async def _open_link(self, index: int) -> BackendSession:
        """Open one link within ``open_timeout``; failures are noted for probing and re-raised."""
        link = self._links[index]
        try:
            async with asyncio.timeout(self._policy.open_timeout):
                return await link.backend.open(self._settings)
        except TimeoutError:
            exc = BackendError(f"{link.name} did not open within {self._policy.open_timeout:g} s", retryable=True)
            self._note_down(index, exc.message, permanent=False)
            raise exc from None
        except BackendError as exc:
            self._note_down(index, exc.message, permanent=not exc.retryable, error=exc)
            raise

    def _begin(self, active: _Active) -> None:
        """Make ``active`` current and start forwarding its events."""
        self._make_current(active)
        self._switching = False
        active.pump = asyncio.create_task(self._pump(active), name=f"failover-pump-{active.name}")

    def _note_down(self, index: int, reason: str, *, permanent: bool, error: BaseException | None = None) -> None:
        wait = self._health.note_down(index, reason, now=time.monotonic(), permanent=permanent, error=error)
        down = self._health.get(index)
        kind = "quota" if down is not None and down.quota else "permanent" if permanent else "transient"
        log.info("session %s: %s down (%s failure); next probe in %.2f s", self._settings.session_id,
                 self._links[index].name, kind, wait)
        self._prober.wake()

    # ---- input ---------------------------------------------------------------------------

    async def forward(self, call: Callable[[BackendSession], Awaitable[None]]) -> bool:
        """Run ``call`` on the current link; False when switching (or it just failed)."""
        active = self.current
        if active is None or self._switching or active.failing:
            return False
        try:
            await call(active.session)
        except BackendError as exc:
            self._request_failover(active, exc.message, exc)
            return False
        return True

    async def ask(self, wanted: _Prompt, active: _Active | None = None) -> None:
        """Prompt the current link (remembered there until answered); keep it while switching."""
        target = active or self.current
        text, reason, media_time = wanted

        async def call(session: BackendSession) -> None:
            await session.prompt(text, reason=reason, media_time=media_time)
            if target is not None:
                target.last_prompt, target.answered = wanted, False

        if not await self.forward(call):
            pending = self._pending_prompt
            if replaces(reason, pending[1] if pending is not None else None):
                self._pending_prompt = wanted

    async def _replay(self, active: _Active, *, unanswered: _Prompt | None) -> None:
        """Bring a new link up to date: commentary so far, the newest frame, the waiting prompt."""
        if isinstance(active.session, CarriesOver) and self.commentary:
            active.session.carry_over(list(self.commentary))
        frame = self.latest_frame
        if frame is not None:
            self.latest_forwarded = await self.forward(lambda s: s.send_frame(frame))
        wanted, self._pending_prompt = self._pending_prompt or unanswered, None
        if wanted is not None:
            await self.ask(wanted, active)

    # ---- output --------------------------------------------------------------------------

    async def _announce(self, old: str, new: str, reason: str) -> None:
        self.switches += 1
        self.switch_log.append((time.monotonic(), old, new, reason))
        log.info("session %s: backend %s -> %s (%s)", self._settings.session_id, old, new, reason)
        media_time = self.latest_frame.media_time if self.latest_frame is not None else None
        await self._core.events.put(BackendChanged(old, new, reason), media_time)

    async def _pump(self, active: _Active) -> None:
        """Forward one link's events; when they end unasked, that link failed."""
        out = self._core.events
        held: BackendEvent | None = None  # an error event may be the failure's last word
        async for event in active.session.events():
            if held is not None:
                await out.put_event(held)
                held = None
            payload = event.payload
            if isinstance(payload, ErrorEvent):
                held = event
                continue
            if isinstance(payload, Commentary) and payload.final:
                active.answered = True
                self.commentary.append((event.media_time, payload.text))
                self._health.note_healthy(active.index)  # it answers: probe backoff starts over
            await out.put_event(event)
        if active.failing:
            return  # its last error is the reason in the backend_changed event
        failure = active.session.failure  # e.g. REST's ServiceError with the server's retry delay
        # A link closed at the end of the session normally just ends; but if it
        # failed with a prompt unanswered (the closing summary), the next link
        # answers it rather than the session ending without one.
        failed_closing = active.closing and (held is not None or failure is not None) and not active.answered
        if active is self.current and not self._finished and (not active.closing or failed_closing):
            reason = held.payload.message if held is not None and isinstance(held.payload, ErrorEvent) else (
                "its events ended unexpectedly")
            self._request_failover(active, reason, failure)
        elif held is not None:
            await out.put_event(held)

    # ---- switching down ------------------------------------------------------------------

    def _request_failover(self, active: _Active, reason: str, error: BackendError | None = None) -> None:
        if self._finished or active is not self.current or active.failing:
            return
        active.failing = True
        active.failure = error
        self._switching = True  # from now on inputs are not forwarded (one prompt waits)
        self._own(self._switch_down(active, reason), f"failover-switch-{active.name}")

    def _own(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _switch_down(self, failed: _Active, reason: str) -> None:
        async with self._core.guard("failover switch", end_events=False):
            async with self._lock:
                await self._do_switch_down(failed, reason)
        if self._core.failure is not None:  # the guard caught a crash: end rather than hang
            self._switching = False
            self._core.events.end()

    async def _do_switch_down(self, failed: _Active, reason: str) -> None:
        if failed is not self.current:
            return
        self._note_down(failed.index, reason, permanent=False, error=failed.failure)
        await self._retire(failed, wait=True)
        reasons = [f"{failed.name}: {reason}"]
        for index in range(failed.index + 1, len(self._links)):
            try:
                session = await self._open_link(index)
            except BackendError as exc:
                reasons.append(f"{self._links[index].name}: {exc.message}")
                continue
            await self._announce(failed.name, self._links[index].name, "; ".join(reasons))
            active = _Active(index, self._links[index].name, session)
            self._begin(active)
            await self._replay(active, unanswered=None if failed.answered else failed.last_prompt)
            self._prober.ensure()
            return
        self._make_current(None)
        self._switching = False
        await self._core.fail(BackendError("every analysis backend failed: " + "; ".join(reasons)))
        self._core.events.end()

    async def _retire(self, old: _Active, *, wait: bool) -> None:
        """Close a link that is no longer current; its remaining events still flow (bounded wait)."""
        closer = self._own(self._close_link(old), f"failover-retire-{old.name}")
        parts: list[asyncio.Task[Any]] = [closer] + ([old.pump] if old.pump is not None else [])
        if wait:
            await asyncio.wait(parts, timeout=self._policy.drain_timeout)

    async def _close_link(self, old: _Active) -> None:
        try:
            await old.session.close()
        except (BackendError, SessionError) as exc:
            log.info("closing %s: %s", old.name, exc.message)
        if not old.absorbed:
            old.absorbed = True
            self._retired = self._retired + old.session.counters()
        await self._core.close_worker(old.pump, self._policy.drain_timeout)

    # ---- probing and switching up ----------------------------------------------------------

    async def _probe_open(self, index: int) -> None:
        """One probe of link ``index`` (the prober calls it when the link is due)."""
        try:
            session = await self._open_link(index)
        except BackendError as exc:
            log.info("probe of %s failed: %s", self._links[index].name, exc.message)
            return
        except Exception as exc:  # a link's bug must not end probing silently
            log.exception("probe of %s crashed", self._links[index].name)
            self._note_down(index, f"{type(exc).__name__}", permanent=True)
            return
        # Shielded: once a switch-up starts it completes even if the probe is cancelled.
        switch = self._own(self._switch_up(index, session), f"failover-switch-up-{self._links[index].name}")
        await asyncio.shield(switch)

    async def _switch_up(self, index: int, session: BackendSession) -> None:
        async with self._lock:
            current = self.current
            if self._finished or current is None or index >= current.index:
                with contextlib.suppress(BackendError, SessionError):
                    await session.close()
                return
            name = self._links[index].name
            fresh = _Active(index, name, session)
            self._make_current(fresh)  # inputs go to the healthy link from now on
            self._switching = False  # (a failing current is replaced here instead)
            unanswered = current.last_prompt if current.failing and not current.answered else None
            await self._replay(fresh, unanswered=unanswered)
            # The old link finishes its running turn first (bounded): no turn lost, none duplicated.
            await self._retire(current, wait=True)
            await self._announce(current.name, name, f"{name} is healthy again")
            fresh.pump = asyncio.create_task(self._pump(fresh), name=f"failover-pump-{fresh.name}")

    # ---- close ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Finish a running switch, flush the current link, end the chain's events."""
        await self._prober.stop()
        # A switch in progress delivers the waiting prompt (e.g. the final one)
        # first; a link that fails while closing hands its unanswered prompt
        # down the chain (bounded: each round moves one link further down).
        for _ in range(len(self._links) + 1):
            while self._tasks:
                await asyncio.wait(list(self._tasks))
            async with self._lock:
                current = self.current
                if current is None:
                    break
                current.closing = True
                await self._close_link(current)
            if not self._tasks:
                break
        self._finished = True
        self._core.events.end()


class _Prober:
    """The probe task: while a better link than the current one is down, reopen it when
    ``LinkHealth`` says it is due (``probe(index)`` opens it and switches up on success)."""

    def __init__(self, health: LinkHealth, probe: Callable[[int], Awaitable[None]], *,
                 below: Callable[[], int]) -> None:
        self._health = health
        self._probe = probe
        self._below = below  # links with a lower index than this are candidates
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A link's health changed: recompute the next probe time."""
        self._wakeup.set()

    def ensure(self) -> None:
        """Probe from now on if a better link exists (idempotent)."""
        if self._below() == 0:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="failover-probe")
        self._wakeup.set()

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while (below := self._below()) > 0:
            index = self._health.due(below, time.monotonic())
            if index is None:
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.01, self._health.wait(below, time.monotonic()))):
                        await self._wakeup.wait()
                continue
            await self._probe(index)
