"""The failover chain: live → REST → offline, and back when a better link is healthy again.

The chain is itself a :class:`~vision_stream.backends.base.Backend`; it sees
its links only through that protocol (it cannot tell live, REST and offline
apart), so any ordered list of backends works.

::

    pipeline ──send_*/prompt──▶ FailoverSession ──▶ current link's session
                                      │  (while switching: newest frame kept, one prompt kept)
    events() ◀── one bounded queue ◀── pump of the current (and of a retiring) session
                                      ▲
                 probe task: reopens better links with backoff; switch-up when one opens

Rules (issue 4, DESIGN.md "Failure model"):

* A link *fails* when its ``send_*``/``prompt`` raises
  :class:`~vision_stream.errors.BackendError` or its ``events()`` ends while we
  did not close it. The live link retries transient failures itself (a
  goAway, one drop) and fails after repeated ones or a permanent one; the
  chain then opens the next link that opens.
* Each switch is exactly one ``BackendChanged(from, to, reason)`` event. The
  failed link's final ``error`` event is not forwarded: its message *is* the
  reason.
* Nothing piles up: while switching, frames are not queued (the newest waits
  in one slot, older ones are counted as dropped), and one prompt waits (the
  higher-ranked one: final > client > scene > cadence). After a switch the
  new link gets the newest frame, the waiting prompt or else the failed link's
  unanswered prompt (asked once more: no turn lost, none asked twice), and
  recent commentary (``carry_over(items)`` when the session offers it, so the
  REST narrative continues).
* Events of every link go through this one queue, so the session's event log
  numbers them without gaps; a failed link is drained before the switch event,
  and on a switch-up the old link finishes its running turn (bounded by
  ``drain_timeout``) before the new link's events flow.
* Probing: a link that failed is reopened after ``probe_base`` seconds,
  doubling per consecutive failure up to ``probe_max`` (jittered), reset once
  it answers a turn. Nor is it reopened before the server's retry delay has
  passed (``ServiceError.retry_after``: of the error raised, of the session's
  ``failure`` when its events ended, or of a refused open; a 429's
  ``RetryInfo``): the later of the two wins. So under a 429 storm each backoff
  step costs at most one switch pair, and no switch-up lands inside a hold
  that is still running. Quota failures (429 / ``RESOURCE_EXHAUSTED``, a Live
  1011 quota close) are logged as such. Opening is the probe (the live link
  connects and sets up; the REST link refuses at once while its key is bad,
  its daily quota is gone or a long hold is in force), so probes never cost
  model turns.
* Every task (pumps, switches, probe, retiring closes) is owned here and
  finished or cancelled by ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import SessionSettings
from ..errors import BackendError, ServiceError, SessionError, UsageError
from ..events import BackendChanged, BackendEvent, Commentary, ErrorEvent, Payload
from ..media.types import AudioChunk, SampledFrame
from .base import Backend, BackendSession
from .event_stream import EventStream

log = logging.getLogger("vision_stream.backends.failover")

PRIORITY = {"cadence": 0, "scene": 1, "client": 2, "final": 3}
# A failure is a quota failure when its error says so (code/status) or, for links that only
# report text (a Live 1011 close), when the reason does (LIVE_API.md "Close codes", §2 "Errors").
QUOTA_CODES = frozenset({"quota", "quota_per_day"})
QUOTA_MARKERS = ("resource_exhausted", "resource has been exhausted", "exceeded your current quota", "rate limit",
                 "quota")
TOKEN_COUNTERS = ("prompt_tokens", "response_tokens", "reconnects", "frames_dropped", "audio_chunks_dropped")


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

    def probe_delay(self, failures: int, rng: random.Random) -> float:
        delay = min(self.probe_max, self.probe_base * 2 ** max(0, failures - 1))
        return delay * (1.0 - self.probe_jitter * rng.random())


def is_quota_failure(reason: str, error: BaseException | None = None) -> bool:
    """Whether a link failed because a quota ran out (429 / RESOURCE_EXHAUSTED / 1011 quota)."""
    if isinstance(error, ServiceError) and (error.code in QUOTA_CODES or error.status == 429):
        return True
    text = reason.lower()
    return any(marker in text for marker in QUOTA_MARKERS)


def server_delay(error: BaseException | None) -> float | None:
    """The wait the service asked for (``ServiceError.retry_after``, seconds), if any."""
    delay = getattr(error, "retry_after", None) if isinstance(error, ServiceError) else None
    return float(delay) if isinstance(delay, int | float) and delay > 0 else None


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
    last_prompt: tuple[str, str, float | None] | None = None
    answered: bool = True
    failing: bool = False
    failure: BackendError | None = None  # why it failed, when an error object said so
    absorbed: bool = False  # its counters moved into the chain's totals
    closing: bool = False  # the chain is closing it at the end of the session


@dataclass(slots=True)
class _Down:
    failures: int = 0  # consecutive failures (reset when the link answers a turn)
    next_probe: float = 0.0  # monotonic seconds: the later of our backoff and the server's delay
    reason: str = ""
    quota: bool = False  # the last failure was a quota failure


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
    """A :class:`BackendSession` that runs on whichever link of the chain is healthy (see module)."""

    def __init__(self, links: Sequence[Link], settings: SessionSettings, policy: FailoverPolicy) -> None:
        self._links = tuple(links)
        self._settings = settings
        self._policy = policy
        self._rng = random.Random()
        self._out = EventStream(policy.event_queue)
        self._lock = asyncio.Lock()  # one switch at a time
        self._current: _Active | None = None
        self._switching = False
        self._pending_frame: SampledFrame | None = None
        self._latest_frame: SampledFrame | None = None
        self._pending_prompt: tuple[str, str, float | None] | None = None
        self._commentary: deque[tuple[float | None, str]] = deque(maxlen=max(1, policy.carry_over))
        self._down: dict[int, _Down] = {}
        self._probe_wakeup = asyncio.Event()
        self._probe: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # switches and retiring closes
        self._closing = False
        self._closed = False
        self._failure: BackendError | None = None
        self._retired_counters: dict[str, int] = {}
        self.switches = 0
        self.frames_dropped = 0
        self.audio_chunks_dropped = 0
        self.switch_log: deque[tuple[float, str, str, str]] = deque(maxlen=256)  # (monotonic, from, to, reason)
        # BackendSession attributes: the current link's name and model (updated at each switch).
        self.name = self._links[0].name
        self.model = ""

    def _make_current(self, active: _Active | None) -> None:
        self._current = active
        if active is not None:
            self.name = active.name
            self.model = str(getattr(active.session, "model", ""))

    # ---- what the pipeline reads ---------------------------------------------------------

    @property
    def current_index(self) -> int | None:
        current = self._current
        return current.index if current is not None else None

    # ---- start ---------------------------------------------------------------------------

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
            active = _Active(index, link.name, session)
            self._make_current(active)
            self._start_pump(active)
            self._ensure_probe()
            return
        assert last_error is not None
        raise last_error

    async def _open_link(self, index: int) -> BackendSession:
        """Open one link within ``open_timeout``; failures are noted for probing and re-raised."""
        link = self._links[index]
        try:
            async with asyncio.timeout(self._policy.open_timeout):
                session = await link.backend.open(self._settings)
        except TimeoutError:
            exc = BackendError(f"{link.name} did not open within {self._policy.open_timeout:g} s", retryable=True)
            self._note_down(index, exc.message, permanent=False)
            raise exc from None
        except BackendError as exc:
            self._note_down(index, exc.message, permanent=not exc.retryable, error=exc)
            raise
        return session

    # ---- input ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._failure is not None:
            raise BackendError(self._failure.message, retryable=self._failure.retryable)
        if self._closing or self._closed:
            raise SessionError("failover session is closing")

    async def _forward(self, call: Callable[[BackendSession], Awaitable[None]]) -> bool:
        """Run ``call`` on the current link; False when switching (or it just failed)."""
        active = self._current
        if active is None or self._switching or active.failing:
            return False
        try:
            await call(active.session)
        except BackendError as exc:
            self._request_failover(active, exc.message, exc)
            return False
        return True

    async def send_frame(self, frame: SampledFrame) -> None:
        """Forward to the current link; while switching, only the newest frame waits."""
        self._check_open()
        self._latest_frame = frame
        if not await self._forward(lambda s: s.send_frame(frame)):
            if self._pending_frame is not None:
                self.frames_dropped += 1
            self._pending_frame = frame

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Forward to the current link; dropped (counted) while switching."""
        self._check_open()
        if not await self._forward(lambda s: s.send_audio(chunk)):
            self.audio_chunks_dropped += 1

    async def end_audio(self) -> None:
        self._check_open()
        await self._forward(lambda s: s.end_audio())

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        self._check_open()
        await self._forward(lambda s: s.send_tool_result(call_id, name, response))

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Forward to the current link (remembered until answered); one waits while switching."""
        self._check_open()
        wanted = (text, reason, media_time)
        active = self._current

        async def ask(session: BackendSession) -> None:
            await session.prompt(text, reason=reason, media_time=media_time)
            if active is not None:
                active.last_prompt, active.answered = wanted, False

        if not await self._forward(ask):
            self._keep_prompt(wanted)

    def _keep_prompt(self, wanted: tuple[str, str, float | None]) -> None:
        pending = self._pending_prompt
        if pending is None or PRIORITY.get(wanted[1], 0) >= PRIORITY.get(pending[1], 0):
            self._pending_prompt = wanted

    def carry_over(self, commentary: Sequence[tuple[float | None, str]]) -> None:
        """Seed the recent commentary (for chains inside chains)."""
        self._commentary.extend(commentary)

    # ---- output --------------------------------------------------------------------------

    def events(self) -> AsyncIterator[BackendEvent]:
        """Every link's events in order, with a ``backend_changed`` at each switch."""
        return aiter(self._out)

    async def _put(self, payload: Payload, media_time: float | None = None) -> None:
        await self._out.put(payload, media_time)

    async def _announce(self, old: str, new: str, reason: str) -> None:
        self.switches += 1
        self.switch_log.append((time.monotonic(), old, new, reason))
        log.info("session %s: backend %s -> %s (%s)", self._settings.session_id, old, new, reason)
        media_time = self._latest_frame.media_time if self._latest_frame is not None else None
        await self._put(BackendChanged(old, new, reason), media_time)

    def _start_pump(self, active: _Active) -> None:
        active.pump = asyncio.create_task(self._pump(active), name=f"failover-pump-{active.name}")

    async def _pump(self, active: _Active) -> None:
        """Forward one link's events; when they end unasked, that link failed."""
        held: BackendEvent | None = None  # an error event may be the failure's last word
        async for event in active.session.events():
            if held is not None:
                await self._out.put_event(held)
                held = None
            payload = event.payload
            if isinstance(payload, ErrorEvent):
                held = event
                continue
            if isinstance(payload, Commentary) and payload.final:
                active.answered = True
                self._commentary.append((event.media_time, payload.text))
                self._down.pop(active.index, None)  # it answers: healthy, probe backoff resets
            await self._out.put_event(event)
        if active.failing:
            return  # its last error is the reason in the backend_changed event
        # A session may say why it failed (REST: the ServiceError with the server's retry delay).
        failure = getattr(active.session, "failure", None)
        failure = failure if isinstance(failure, BackendError) else None
        # A link closed at the end of the session normally just ends; but if it
        # failed with a prompt unanswered (the closing summary), the next link
        # answers it rather than the session ending without one.
        failed_closing = active.closing and (held is not None or failure is not None) and not active.answered
        if active is self._current and not self._closing and (not active.closing or failed_closing):
            reason = held.payload.message if held is not None and isinstance(held.payload, ErrorEvent) else (
                "its events ended unexpectedly")
            self._request_failover(active, reason, failure)
        elif held is not None:
            await self._out.put_event(held)

    # ---- switching down ------------------------------------------------------------------

    def _request_failover(self, active: _Active, reason: str, error: BackendError | None = None) -> None:
        if self._closing or active is not self._current or active.failing:
            return
        active.failing = True
        active.failure = error
        self._switching = True  # from now on inputs wait in the one-slot buffers
        self._own(self._switch_down(active, reason), f"failover-switch-{active.name}")

    def _own(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _switch_down(self, failed: _Active, reason: str) -> None:
        try:
            async with self._lock:
                await self._do_switch_down(failed, reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the pipeline waiting forever
            log.exception("failover switch crashed")
            await self._fail_chain(BackendError(f"failover failed: {type(exc).__name__}: {exc}"))

    async def _do_switch_down(self, failed: _Active, reason: str) -> None:
        if failed is not self._current:
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
            self._make_current(active)
            self._switching = False
            self._start_pump(active)
            await self._replay(active, unanswered=None if failed.answered else failed.last_prompt)
            self._ensure_probe()
            return
        self._make_current(None)
        await self._fail_chain(BackendError("every analysis backend failed: " + "; ".join(reasons)))

    async def _replay(self, active: _Active, *, unanswered: tuple[str, str, float | None] | None) -> None:
        """Bring a new link up to date: commentary so far, the newest frame, the waiting prompt."""
        carry = getattr(active.session, "carry_over", None)
        if callable(carry) and self._commentary:
            carry(list(self._commentary))
        frame = self._pending_frame or self._latest_frame
        self._pending_frame = None
        if frame is not None:
            await self._forward(lambda s: s.send_frame(frame))
        wanted = self._pending_prompt or unanswered
        self._pending_prompt = None
        if wanted is not None:
            text, reason, media_time = wanted

            async def ask(session: BackendSession) -> None:
                await session.prompt(text, reason=reason, media_time=media_time)
                active.last_prompt, active.answered = wanted, False

            if not await self._forward(ask):
                self._keep_prompt(wanted)

    async def _retire(self, old: _Active, *, wait: bool) -> None:
        """Close a link that is no longer current; its remaining events still flow (bounded wait)."""
        closer = self._own(self._close_quietly(old), f"failover-retire-{old.name}")
        parts: list[asyncio.Task[Any]] = [closer] + ([old.pump] if old.pump is not None else [])
        if wait:
            await asyncio.wait(parts, timeout=self._policy.drain_timeout)

    async def _close_quietly(self, old: _Active) -> None:
        try:
            await old.session.close()
        except (BackendError, SessionError) as exc:
            log.info("closing %s: %s", old.name, exc.message)
        counters = getattr(old.session, "counters", None)
        if callable(counters) and not old.absorbed:
            old.absorbed = True
            for key, value in counters().items():
                if key in TOKEN_COUNTERS:
                    self._retired_counters[key] = self._retired_counters.get(key, 0) + int(value)
        if old.pump is not None:
            await asyncio.wait([old.pump], timeout=self._policy.drain_timeout)
            if not old.pump.done():
                old.pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await old.pump

    async def _fail_chain(self, exc: BackendError) -> None:
        self._failure = exc
        self._switching = False
        log.warning("session %s: %s", self._settings.session_id, exc.message)
        await self._put(ErrorEvent(exc.code, exc.message, retryable=exc.retryable))
        self._end()

    def _end(self) -> None:
        self._out.end()

    # ---- probing and switching up ----------------------------------------------------------

    def _note_down(self, index: int, reason: str, *, permanent: bool, error: BackendError | None = None) -> None:
        """Count a failure of link ``index``; its next probe is after our backoff *and* the server's delay."""
        down = self._down.setdefault(index, _Down())
        down.failures += 1 + (self._policy.permanent_penalty if permanent and down.failures == 0 else 0)
        now = time.monotonic()
        delay = server_delay(error)
        down.next_probe = now + max(self._policy.probe_delay(down.failures, self._rng), delay or 0.0)
        down.reason = reason
        down.quota = is_quota_failure(reason, error)
        log.info("session %s: %s down (%s failure %d%s); next probe in %.2f s", self._settings.session_id,
                 self._links[index].name, "quota" if down.quota else "permanent" if permanent else "transient",
                 down.failures, f", server asks {delay:.2f} s" if delay is not None else "", down.next_probe - now)
        self._probe_wakeup.set()

    def _ensure_probe(self) -> None:
        current = self._current
        if current is None or current.index == 0 or self._closing:
            return
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._probe_loop(), name="failover-probe")
        self._probe_wakeup.set()

    async def _probe_loop(self) -> None:
        while not self._closing:
            current = self._current
            if current is None or current.index == 0:
                return
            now = time.monotonic()
            better = range(current.index)
            due = [i for i in better if self._down.get(i, _Down()).next_probe <= now]
            if not due:
                wait = min(self._down.get(i, _Down()).next_probe for i in better) - now
                self._probe_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.01, wait)):
                        await self._probe_wakeup.wait()
                continue
            index = due[0]
            try:
                session = await self._open_link(index)
            except BackendError as exc:
                log.info("probe of %s failed: %s", self._links[index].name, exc.message)
                continue
            except Exception as exc:  # a link's bug must not end probing silently
                log.exception("probe of %s crashed", self._links[index].name)
                self._note_down(index, f"{type(exc).__name__}", permanent=True)
                continue
            # Shielded: once a switch-up starts it completes even if the probe is cancelled.
            switch = self._own(self._switch_up(index, session), f"failover-switch-up-{self._links[index].name}")
            await asyncio.shield(switch)

    async def _switch_up(self, index: int, session: BackendSession) -> None:
        async with self._lock:
            current = self._current
            if self._closing or current is None or index >= current.index:
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
            self._start_pump(fresh)

    # ---- close ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Finish a running switch, flush the current link, end ``events()``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        probe = self._probe
        if probe is not None and not probe.done():
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        # A switch in progress delivers the waiting prompt (e.g. the final one)
        # first; a link that fails while closing hands its unanswered prompt
        # down the chain (bounded: each round moves one link further down).
        for _ in range(len(self._links) + 1):
            while self._tasks:
                await asyncio.wait(list(self._tasks))
            async with self._lock:
                current = self._current
                if current is None:
                    break
                current.closing = True
                await self._close_quietly(current)
            if not self._tasks:
                break
        self._closing = True
        if not self._out.ended:
            self._end()

    def counters(self) -> Mapping[str, int]:
        """Counts of every link so far plus the chain's own (see ``backends.base``)."""
        merged = dict(self._retired_counters)
        current = self._current
        counters = getattr(current.session, "counters", None) if current is not None else None
        if callable(counters) and current is not None and not current.absorbed:
            for key, value in counters().items():
                merged[key] = merged.get(key, 0) + int(value)
        merged["frames_dropped"] = merged.get("frames_dropped", 0) + self.frames_dropped
        merged["audio_chunks_dropped"] = merged.get("audio_chunks_dropped", 0) + self.audio_chunks_dropped
        merged["backend_switches"] = self.switches
        return merged
