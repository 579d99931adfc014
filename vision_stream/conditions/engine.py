"""What a pipeline session runs for its conditions: verdicts and health in, ``Alert`` payloads out.

Backends judge the session's conditions their own way and yield
:class:`~vision_stream.events.ConditionVerdict` payloads (the offline
analyzer: :mod:`.offline`; Live/REST: the model's answers). The session hands
each verdict to :meth:`ConditionEngine.verdict`, and what it observes about
itself (frames arriving, source state, backend switches, the budget, a
once-a-second tick) to the other methods; every method returns the
:class:`~vision_stream.events.Alert` payloads to append to the event log.

Verification (issue 12 item 2): with a :attr:`ConditionEngine.verifier` set, a
FIRED candidate of a ``verify`` condition is checked through it in a task of its
own, so the session's other events (commentary, detections) keep flowing while a
second opinion is pending (seconds against Google). The alert is handed to
:attr:`ConditionEngine.deliver` when the verdict arrives, stamped with the
candidate's media time and frame ids; a rejected one is counted (``rejected``,
Stats.alert_candidates_rejected) and not alerted. Without a verifier the alert
fires at once with ``verification.requested`` set and ``confirmed`` false.

Bounds, per session: at most :data:`VERIFY_IN_FLIGHT` checks run at once and
:data:`VERIFY_WAITING` more wait for a slot (verified later, in order); a
candidate beyond that fires at once *unverified* (``requested`` true,
``confirmed`` false, evidence saying so): an alert is never silenced by a busy
verifier, the same rule as a failed check (verify.py). A ``resolved`` alert of a
condition whose FIRED is still being checked waits for that check and is dropped
if the candidate is rejected (no "resolved" for an alert that never went out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from ..events import Alert, ConditionVerdict, Verification
from .health import HealthMonitor, health_conditions
from .model import Condition, HealthSettings, check_conditions, health_with, split_health
from .offline import parse_rule
from .policy import AlertPolicy, Candidate

__all__ = ["VERIFY_IN_FLIGHT", "VERIFY_WAITING", "ConditionEngine", "Deliver", "Verifier"]

log = logging.getLogger(__name__)

FRAME_IDS_KEPT = 64  # (media time, frame id) pairs remembered to name a verdict's frame
VERIFY_IN_FLIGHT = 2  # second opinions running at once per session
VERIFY_WAITING = 4  # candidates waiting for a slot; beyond: fire unverified

Deliver = Callable[[list[Alert], float | None], None]
"""Where late alerts go (the session's event log): ``(alerts, media_time)``."""


class Verifier(Protocol):
    """A second opinion on a FIRED candidate (C3: a REST call with more frames)."""

    async def verify(self, condition: Condition, verdict: ConditionVerdict,
                     frame_ids: tuple[int, ...]) -> Verification:
        ...


class ConditionEngine:
    """The conditions of one session, user-set and built-in, and their alerts."""

    def __init__(self, conditions: Iterable[Condition] = (), *, health: HealthSettings | None = None,
                 now: float | None = None) -> None:
        start = time.monotonic() if now is None else now
        user, self._specs = split_health(check_conditions(conditions))  # health.*: model.py
        self._user = AlertPolicy(user)
        self._base_health = health
        health = health_with(health, self._specs)
        self._health = HealthMonitor(health, now=start) if health is not None else None
        self._builtin = AlertPolicy(health_conditions(health) if health is not None else ())
        self._frames: deque[tuple[float, int]] = deque(maxlen=FRAME_IDS_KEPT)
        self._no_frames = self._no_frame_rules()
        self._last_frame = start
        self.verifier: Verifier | None = None
        self.deliver: Deliver | None = None  # late (verified) alerts; None: kept in ``late``
        self.late: list[Alert] = []
        self.alerts = 0
        self._slots = asyncio.Semaphore(VERIFY_IN_FLIGHT)
        self._checks: set[asyncio.Task[bool]] = set()
        self._tail: dict[str, asyncio.Task[bool]] = {}  # condition id -> its newest pending check

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """The user's conditions as set (what SetConditions replaced last), ``health.*`` included."""
        return self._user.conditions + self._specs

    @property
    def judged(self) -> tuple[Condition, ...]:
        """The conditions a backend judges (no ``health.*`` settings)."""
        return self._user.conditions

    @property
    def rejected(self) -> int:
        return self._user.rejected

    @property
    def watching(self) -> bool:
        """Anything to watch (else the session need not tick)."""
        return bool(self._user.conditions or self._builtin.conditions)

    def replace(self, conditions: Iterable[Condition]) -> tuple[Condition, ...]:
        items = check_conditions(conditions)
        user, specs = split_health(items)
        health = health_with(self._base_health, specs)  # raises before anything changes
        self._user.replace(user)
        self._specs = specs
        self._set_health(health)
        self._no_frames = self._no_frame_rules()
        return items

    def _set_health(self, health: HealthSettings | None) -> None:
        """New health thresholds: a running monitor keeps its clock; unchanged conditions their state."""
        if health is None:
            self._health = None
        elif self._health is None:
            self._health = HealthMonitor(health, now=time.monotonic())
        else:
            self._health.settings = health
        self._builtin.replace(health_conditions(health) if health is not None else ())

    def _no_frame_rules(self) -> dict[str, float]:
        """User conditions saying "no frames [for N s]": judged here, by the pipeline's clock."""
        out = {}
        for condition in self._user.conditions:
            rule = parse_rule(condition.text)
            if rule is not None and rule.kind == "no_frames":
                out[condition.id] = rule.seconds
        return out

    # -- inputs -----------------------------------------------------------------

    def verdict(self, verdict: ConditionVerdict, media_time: float | None,
                wall: float | None = None) -> list[Alert]:
        """A backend's verdict (cooldowns run on media time; monotonic when it has none).

        Returns the alerts to append now; a FIRED candidate of a ``verify`` condition
        is checked in its own task and its alert goes to :attr:`deliver` later."""
        now = media_time if media_time is not None else time.monotonic()
        candidate = self._user.observe(verdict, now=now, wall=time.time() if wall is None else wall)
        if candidate is None:
            return []
        frame_ids = verdict.frame_ids or self._frame_ids_at(media_time)
        cid = candidate.condition.id
        if candidate.state == "fired" and candidate.condition.verify:
            if self.verifier is None:
                unverified = Verification(requested=True, confirmed=False, evidence="no verifier available")
                return [self._alert(candidate, frame_ids, unverified)]
            if len(self._checks) >= VERIFY_IN_FLIGHT + VERIFY_WAITING:
                busy = Verification(requested=True, confirmed=False, evidence=(
                    f"not verified: {len(self._checks)} second opinions already pending"))
                return [self._alert(candidate, frame_ids, busy)]
            self._spawn(cid, self._check(candidate, frame_ids, media_time, now))
            return []
        if cid in self._tail:  # a RESOLVED (or unverified FIRED) after a pending check: keep the order
            self._spawn(cid, self._after(self._tail[cid], candidate, frame_ids, media_time))
            return []
        return [self._alert(candidate, frame_ids, Verification())]

    def _spawn(self, cid: str, work: Awaitable[bool]) -> None:
        task: asyncio.Task[bool] = asyncio.ensure_future(work)
        self._checks.add(task)
        self._tail[cid] = task

        def done(t: asyncio.Task[bool]) -> None:
            self._checks.discard(t)
            if self._tail.get(cid) is t:
                del self._tail[cid]

        task.add_done_callback(done)

    async def _check(self, candidate: Candidate, frame_ids: tuple[int, ...], media_time: float | None,
                     fired_at: float) -> bool:
        """One second opinion (at most VERIFY_IN_FLIGHT at once); True when the alert went out."""
        assert self.verifier is not None
        async with self._slots:
            try:
                verification = await self.verifier.verify(candidate.condition, candidate.verdict, frame_ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in a verifier must not silence the alert
                log.exception("second opinion on %s failed", candidate.condition.id)
                verification = Verification(requested=True, confirmed=False,
                                            evidence=f"the second opinion failed: {type(exc).__name__}")
        # Rejected only by an answer (backend set); a failed check fires unverified (verify.py).
        if verification.backend and not verification.confirmed:
            self._user.reject(candidate.condition.id, fired_at)
            return False
        self._emit([self._alert(candidate, frame_ids, verification)], media_time)
        return True

    async def _after(self, before: asyncio.Task[bool], candidate: Candidate, frame_ids: tuple[int, ...],
                     media_time: float | None) -> bool:
        """An alert of a condition with a pending check: after it (a RESOLVED only if it alerted)."""
        try:
            alerted = await asyncio.shield(before)
        except asyncio.CancelledError:
            raise
        except Exception:  # _check catches its own; a broken predecessor counts as not alerted
            alerted = False
        if candidate.state == "resolved" and not alerted:
            return False
        self._emit([self._alert(candidate, frame_ids, Verification())], media_time)
        return True

    def _emit(self, alerts: list[Alert], media_time: float | None) -> None:
        if self.deliver is None:
            self.late.extend(alerts)
        else:
            self.deliver(alerts, media_time)

    @property
    def pending(self) -> int:
        """Second opinions running or waiting (and alerts queued behind them)."""
        return len(self._checks)

    async def settle(self, within: float) -> None:
        """End of session: wait up to ``within`` s for pending checks, then cancel the rest
        (their candidates are lost with the session; the log is closing)."""
        if self._checks:
            await asyncio.wait(set(self._checks), timeout=within)
        for task in list(self._checks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def frame(self, media_time: float, frame_id: int, now: float | None = None) -> list[Alert]:
        """A sampled frame went to the backend with ``frame_id``."""
        now = time.monotonic() if now is None else now
        self._frames.append((media_time, frame_id))
        self._last_frame = now
        alerts = self._clock_verdicts(now, arrived=True)
        if self._health is not None:
            alerts += self._health_alerts(self._health.frame(now), now)
        return alerts

    def source_state(self, state: str, now: float | None = None) -> list[Alert]:
        if self._health is None:
            return []
        now = time.monotonic() if now is None else now
        return self._health_alerts(self._health.source_state(state, now), now)

    def backend_changed(self, to_backend: str, reason: str, now: float | None = None) -> list[Alert]:
        if self._health is None:
            return []
        now = time.monotonic() if now is None else now
        return self._health_alerts(self._health.backend_changed(to_backend, reason), now)

    def budget_exhausted(self, exhausted: bool, reason: str, now: float | None = None) -> list[Alert]:
        """The hook the budget governor calls: ``exhausted`` true when the bound is reached."""
        if self._health is None:
            return []
        now = time.monotonic() if now is None else now
        return self._health_alerts(self._health.budget(exhausted, reason), now)

    def tick(self, frames_in: int, now: float | None = None) -> list[Alert]:
        """About once a second: the conditions that hold by time passing (no frames, reconnecting, fps)."""
        now = time.monotonic() if now is None else now
        alerts = self._clock_verdicts(now, arrived=False)
        if self._health is not None:
            alerts += self._health_alerts(self._health.tick(now, frames_in), now)
        return alerts

    # -- outputs ----------------------------------------------------------------

    def _clock_verdicts(self, now: float, *, arrived: bool) -> list[Alert]:
        out = []
        gap = now - self._last_frame
        for cid, seconds in self._no_frames.items():
            met = not arrived and gap >= seconds
            if arrived or met or self._user.holding(cid):
                verdict = ConditionVerdict(cid, met, 1.0, f"no frames for {gap:.1f} s" if met else "frames again",
                                           "pipeline")
                candidate = self._user.observe(verdict, now=now, wall=time.time())
                if candidate is not None:
                    out.append(self._alert(candidate, (), Verification()))
        return out

    def _health_alerts(self, verdicts: list[ConditionVerdict], now: float) -> list[Alert]:
        out = []
        for verdict in verdicts:
            candidate = self._builtin.observe(verdict, now=now, wall=time.time())
            if candidate is not None:
                out.append(self._alert(candidate, (), Verification()))
        return out

    def _frame_ids_at(self, media_time: float | None) -> tuple[int, ...]:
        """The id of the newest frame at or before ``media_time`` (the frame a verdict judged)."""
        if media_time is None:
            return ()
        for t, frame_id in reversed(self._frames):
            if t <= media_time + 1e-6:
                return (frame_id,)
        return ()

    def _alert(self, candidate: Candidate, frame_ids: tuple[int, ...], verification: Verification) -> Alert:
        self.alerts += 1
        verdict, condition = candidate.verdict, candidate.condition
        return Alert(condition_id=condition.id, condition=condition.text, state=candidate.state,
                     confidence=round(verdict.confidence, 3), evidence=verdict.evidence, backend=verdict.backend,
                     frame_ids=tuple(frame_ids), verification=verification, severity=condition.severity,
                     builtin=condition.builtin)
