"""The failover chain's switching: which link is current, its event pump, switch down, probe, switch up.

:class:`Switcher` owns every task of the chain (pumps, switches, the probe,
retiring closes) and finishes or cancels them in ``close()``. The rules it
carries out are in ``backends/failover.py``'s docstring; the input side is
:class:`~vision_stream.backends.failover_inputs.LinkInputs` and the probe
schedule :class:`~vision_stream.backends.failover_health.LinkHealth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..conditions.model import Condition
from ..config import SessionSettings
from ..errors import BackendError, SessionError
from ..events import BackendChanged, BackendEvent, Commentary, ErrorEvent
from .base import BackendCounters, BackendSession, set_conditions
from .failover_health import LinkHealth
from .failover_inputs import ActiveLink, LinkInputs
from .session_core import SessionCore

if TYPE_CHECKING:
    from .failover import FailoverPolicy, Link

__all__ = ["Prober", "Switcher"]

log = logging.getLogger("vision_stream.backends.failover")


class Switcher:
    """Which link is current: its pump, switch down, probe, switch up, close (inputs: ``self.inputs``)."""

    def __init__(self, links: tuple[Link, ...], settings: SessionSettings, policy: FailoverPolicy,
                 core: SessionCore, *, on_current: Callable[[ActiveLink], None]) -> None:
        self._links = links
        self._settings = settings
        self._policy = policy
        self._core = core
        self._health = LinkHealth(policy.probe, permanent_penalty=policy.permanent_penalty)
        self._lock = asyncio.Lock()  # one switch at a time
        self.current: ActiveLink | None = None
        self._switching = False
        # prefer(): the best link the chain may switch up to (0: any). A budget moves a session
        # to a cheaper link on request; probes do not bring it back while this holds.
        self._floor = 0
        self.inputs = LinkInputs(policy.carry_over, receiver=self._receiver, on_failure=self._request_failover,
                                 replay_frames=policy.replay_frames, replay_audio=policy.replay_audio)
        self._prober = Prober(self._health, self._probe_open, below=self._probe_limit)
        self._tasks: set[asyncio.Task[Any]] = set()  # switches and retiring closes
        self._finished = False  # close() is done with the links: no more switching or probing
        self._retired = BackendCounters()
        self.switches = 0
        self.switch_log: deque[tuple[float, str, str, str]] = deque(maxlen=256)  # (monotonic, from, to, reason)
        self._on_current = on_current

    @property
    def link_names(self) -> tuple[str, ...]:
        return tuple(link.name for link in self._links)

    def set_conditions(self, conditions: Sequence[Condition]) -> None:
        """New watch conditions: links open with them from now on; the current one is told."""
        self._settings = replace(self._settings, conditions=tuple(conditions))
        if self.current is not None:
            set_conditions(self.current.session, self._settings.conditions)

    def _receiver(self) -> ActiveLink | None:
        """The link inputs go to: the current one, unless the chain is switching or it is failing."""
        active = self.current
        return None if active is None or self._switching or active.failing else active

    def _make_current(self, active: ActiveLink | None) -> None:
        self.current = active
        if active is not None:
            self._on_current(active)

    def _probe_limit(self) -> int:
        """Links better than this index are probed (0: the best link is current, or the chain ended)."""
        current = self.current
        return 0 if current is None or self._finished or current.index <= self._floor else current.index

    def link_counters(self) -> BackendCounters:
        current = self.current
        if current is None or current.absorbed:
            return self._retired
        return self._retired + current.session.counters()

    # ---- opening links -------------------------------------------------------------------

    async def start(self) -> None:
        """Run on the best link that opens, hedged: while the best candidate is still opening,
        one more link starts opening every ``hedge_after`` seconds, so an unreachable link
        (a connect timeout) and the next one's own check overlap instead of adding up.
        Links below the one chosen are closed unused (their opens cost no model turn)."""
        opening: list[asyncio.Task[BackendSession]] = []

        def open_next() -> None:
            if len(opening) < len(self._links):
                index = len(opening)
                opening.append(asyncio.create_task(self._open_link(index),
                                                   name=f"failover-open-{self._links[index].name}"))

        reasons: list[str] = []
        last_error: BaseException | None = None
        try:
            for index, link in enumerate(self._links):
                while len(opening) <= index:
                    open_next()
                task = opening[index]
                while not task.done():
                    await asyncio.wait({task}, timeout=self._policy.hedge_after)
                    if not task.done():
                        open_next()
                try:
                    session = task.result()
                except BackendError as exc:
                    reasons.append(f"{link.name}: {exc.message}")
                    last_error = exc
                    continue
                for spare in opening[index + 1:]:
                    self._own(_discard(spare), f"failover-discard-{spare.get_name()}")
                if index > 0:
                    await self._announce(self._links[0].name, link.name, "; ".join(reasons))
                self._begin(ActiveLink(index, link.name, session))
                self._prober.ensure()
                return
        except BaseException:
            for task in opening:
                task.cancel()
                self._own(_discard(task), f"failover-discard-{task.get_name()}")
            raise
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

    def _begin(self, active: ActiveLink) -> None:
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

    # ---- output --------------------------------------------------------------------------

    async def _announce(self, old: str, new: str, reason: str) -> None:
        self.switches += 1
        self.switch_log.append((time.monotonic(), old, new, reason))
        log.info("session %s: backend %s -> %s (%s)", self._settings.session_id, old, new, reason)
        media_time = self.inputs.latest_frame.media_time if self.inputs.latest_frame is not None else None
        await self._core.events.put(BackendChanged(old, new, reason), media_time)

    async def _pump(self, active: ActiveLink) -> None:
        """Forward one link's events; when they end unasked, that link failed."""
        out = self._core.events
        held: BackendEvent | None = None  # an error event may be the failure's last word
        async for event in active.session.events():
            if held is not None:
                await out.put_event(held)
                held = None
            payload = event.payload
            # Only an error of a failed link may be its last word (core.fail records the failure
            # before the event): a link's warnings (stalled, rate limited) go out at once.
            if isinstance(payload, ErrorEvent) and active.session.failure is not None:
                held = event
                continue
            if isinstance(payload, Commentary) and payload.final:
                active.answered = True
                self.inputs.commentary.append((event.media_time, payload.text))
                self.inputs.settled(event.media_time)
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

    def _request_failover(self, active: ActiveLink, reason: str, error: BackendError | None = None) -> None:
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

    async def _switch_down(self, failed: ActiveLink, reason: str) -> None:
        async with self._core.guard("failover switch", end_events=False):
            async with self._lock:
                await self._do_switch_down(failed, reason)
        if self._core.failure is not None:  # the guard caught a crash: end rather than hang
            self._switching = False
            self._core.events.end()

    async def _do_switch_down(self, failed: ActiveLink, reason: str) -> None:
        if failed is not self.current:
            return
        if failed.index <= self._floor:
            self._floor = 0  # the preferred link failed: the preference is void, the chain's rules apply
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
            active = ActiveLink(index, self._links[index].name, session)
            self._make_current(active)
            active.pump = asyncio.create_task(self._pump(active), name=f"failover-pump-{active.name}")
            # Still switching: inputs join the backlog, which the replay sends in order, then they flow.
            await self.inputs.replay(active, unanswered=None if failed.answered else failed.last_prompt,
                                     backlog=True)
            self._switching = False
            self._prober.ensure()
            return
        self._make_current(None)
        self._switching = False
        await self._core.fail(BackendError("every analysis backend failed: " + "; ".join(reasons)))
        self._core.events.end()

    async def _retire(self, old: ActiveLink, *, wait: bool) -> None:
        """Close a link that is no longer current; its remaining events still flow (bounded wait)."""
        closer = self._own(self._close_link(old), f"failover-retire-{old.name}")
        parts: list[asyncio.Task[Any]] = [closer] + ([old.pump] if old.pump is not None else [])
        if wait:
            await asyncio.wait(parts, timeout=self._policy.drain_timeout)

    async def _close_link(self, old: ActiveLink) -> None:
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

    # ---- switching on request (a budget: prefer a cheaper link, release it) ----------------

    def prefer(self, name: str, reason: str) -> bool:
        """Move to the link called ``name`` (the others stay as they are) and stay there:
        probes no longer switch up past it. False when the chain has no such link, is on it
        already, or is switching or closing (the caller may ask again later)."""
        index = next((i for i, link in enumerate(self._links) if link.name == name), None)
        current = self.current
        if index is None or current is None or self._finished or self._switching or current.failing:
            return False
        self._floor = index
        if index == current.index:
            return False
        self._own(self._switch_on_request(index, reason), f"failover-prefer-{name}")
        return True

    def release(self, reason: str) -> bool:
        """Undo :meth:`prefer`: move back to the best link (one switch, ``reason``); when it
        does not open, it is noted down and probed as usual. False when there is nothing to undo."""
        current = self.current
        self._floor = 0
        if current is None or self._finished or self._switching or current.failing or current.index == 0:
            return False
        self._own(self._switch_on_request(0, reason), f"failover-release-{self._links[0].name}")
        return True

    async def _switch_on_request(self, index: int, reason: str) -> None:
        try:
            session = await self._open_link(index)  # a failure is noted for probing (_open_link)
        except BackendError as exc:
            log.info("switch to %s on request failed: %s", self._links[index].name, exc.message)
            self._prober.ensure()
            return
        await self._switch_up(index, session, reason=reason)
        self._prober.ensure()

    def _unwanted(self, index: int, current: int, reason: str | None) -> bool:
        if reason is None:  # healthy again: only a better link, and not past a preference
            return index >= current or index < self._floor
        return index == current  # on request: any other link

    async def _switch_up(self, index: int, session: BackendSession, *, reason: str | None = None) -> None:
        """Make link ``index`` current: a better link that is healthy again (``reason`` None),
        or any link on request (``reason`` given: :meth:`prefer`, :meth:`release`)."""
        async with self._lock:
            current = self.current
            if current is None or self._finished or self._unwanted(index, current.index, reason):
                with contextlib.suppress(BackendError, SessionError):
                    await session.close()
                return
            name = self._links[index].name
            fresh = ActiveLink(index, name, session)
            self._make_current(fresh)  # inputs go to the healthy link from now on
            self._switching = False  # (a failing current is replaced here instead)
            unanswered = current.last_prompt if current.failing and not current.answered else None
            await self.inputs.replay(fresh, unanswered=unanswered, backlog=False)
            # The old link finishes its running turn first (bounded): no turn lost, none duplicated.
            await self._retire(current, wait=True)
            await self._announce(current.name, name, reason or f"{name} is healthy again")
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


async def _discard(opening: asyncio.Task[BackendSession]) -> None:
    """Close the session a hedged open produced once a better link won (nothing if it failed)."""
    try:
        session = await opening
    except (asyncio.CancelledError, Exception):  # its failure was noted by _open_link, or it was cancelled
        return
    with contextlib.suppress(BackendError, SessionError):
        await session.close()


class Prober:
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
