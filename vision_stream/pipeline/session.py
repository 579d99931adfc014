"""A session: one media source wired to one backend session and one event log.

::

    source.items()  ──(SourceReader: pace, sample, encode)──▶ Mailbox ──▶ feed ──▶ backend
                                                                                        │
    EventLog ◀──────────────────────────── event pump task ◀── backend.events() ◀──────┘

:class:`Session` owns the lifecycle (state, ListSessions fields, stop, the one
``session_ended``) and the event pump (backend -> log). The source thread is
:class:`~vision_stream.pipeline.reader.SourceReader`, the feed (mailbox ->
backend, prompting as :class:`~vision_stream.pipeline.cadence.CommentaryCadence`
says) is :class:`~vision_stream.pipeline.feed.Feed`, and the numbers are
:mod:`~vision_stream.pipeline.stats`. Commentary prompts follow media time
(``commentary_interval``), so paced and ``--fast`` replays prompt at the same
points. Every session ends with exactly one ``session_ended`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from ..backends.base import Backend, BackendCounters, BackendSession, set_conditions
from ..conditions.engine import ConditionEngine
from ..conditions.model import Condition, HealthSettings
from ..config import Limits, SamplingPolicy, SessionSettings
from ..errors import VisionStreamError
from ..events import (
    Alert,
    BackendChanged,
    BackendEvent,
    ConditionVerdict,
    ErrorEvent,
    EventLog,
    SessionEnded,
    SessionStarted,
    Stats,
)
from ..media.sampler import FrameSampler
from ..media.types import MediaSource, SampledFrame, SourceStatus
from ..pricing import estimate_cost
from ..usage import Usage
from .budget import BudgetChange, BudgetGovernor
from .cadence import CommentaryCadence
from .feed import Feed
from .frame_ring import FrameRing
from .mailbox import Mailbox
from .packet_ring import PacketRing
from .reader import SourceReader
from .stats import MediaClock, PipelineCounters, SourceHealth, build_stats
from .workers import shared_pool

__all__ = ["BACKEND_CLOSE_TIMEOUT", "Session", "SessionState"]

log = logging.getLogger(__name__)

# How long close() may take to flush a backend's last events.
BACKEND_CLOSE_TIMEOUT = 30.0
# How long the end of a session waits for the source thread to notice.
_READER_JOIN_TIMEOUT = 5.0
# Seconds between checks of the time-driven conditions (no frames, reconnecting, fps).
_CLOCK_TICK = 1.0


def _health(settings: HealthSettings, live: bool) -> HealthSettings | None:
    """The built-in health conditions to run: by default on for live sources (cameras), off otherwise."""
    enabled = live if settings.enabled is None else settings.enabled
    return settings if enabled else None


class SessionState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    ENDING = "ending"
    ENDED = "ended"
    FAILED = "failed"


class Session:
    """Runs one source through one backend into one event log.

    ``paced``: replay a non-live source at source speed (it stands in for a
    camera). ``lossless``: apply backpressure instead of dropping frames
    (batch work, ``--fast``); otherwise the newest frame wins. The backend is
    told too (``SessionSettings.lossless``): it waits for its service rather
    than dropping, so the whole path, reader to model, is lossless.
    """

    def __init__(
        self,
        *,
        settings: SessionSettings,
        source: MediaSource,
        backend: Backend,
        sampling: SamplingPolicy,
        limits: Limits,
        paced: bool,
        lossless: bool,
    ) -> None:
        # The backend honours the same discipline as the mailbox (backends.base: lossless).
        self.settings = replace(settings, lossless=lossless) if settings.lossless != lossless else settings
        self.session_id = settings.session_id
        self.source = source
        self.backend = backend
        self.sampling = sampling
        self.limits = limits
        self.paced = paced and not source.live
        self.lossless = lossless
        self.log = EventLog(self.session_id, retention=limits.event_retention)
        self.state = SessionState.STARTING
        self.started_at = time.time()
        self.last_error = ""
        self.next_attempt_at: float | None = None  # reconnecting: wall time (s) of the next attempt
        self._counters = PipelineCounters()
        self._media = MediaClock()
        self._source_health = SourceHealth()
        self._sampler = FrameSampler(sampling)
        self._cadence = CommentaryCadence(settings.commentary_interval)
        # The JPEGs the model saw, newest last (HTTP /frames/latest and /frames/{id},
        # GetFrames, ExportClip) and, for sources with packets, their compressed video.
        self.frames = FrameRing(limits.evidence_frames, limits.evidence_bytes, limits.evidence_seconds)
        self.packets: PacketRing | None = None
        if hasattr(source, "packet_sink"):  # files, pushed containers (media/demux.py)
            self.packets = PacketRing(limits.evidence_bytes, limits.evidence_seconds)
            source.packet_sink = self.packets
        self._budget = BudgetGovernor(max_cost_per_hour=settings.max_cost_per_hour,
                                      max_tokens_per_hour=settings.max_tokens_per_hour,
                                      base_sampling=sampling, base_interval=settings.commentary_interval,
                                      resolution=settings.media_resolution)
        self._mailbox = Mailbox(
            lossless=lossless,
            frame_slots=limits.frame_slots,
            audio_chunks=limits.audio_chunks,
            capacity=limits.lossless_queue,
        )
        # Watch conditions and built-in health conditions -> Alert events (vision_stream.conditions).
        self.conditions = ConditionEngine(settings.conditions, health=_health(settings.health, source.live))
        self.conditions.deliver = self._log_alerts  # verified alerts arrive later, beside the pump
        # health.* conditions set thresholds (conditions/model.py); the backend judges the rest.
        self.settings = replace(self.settings, conditions=self.conditions.judged)
        self._stop = threading.Event()
        self._stop_reason = ""
        self._backend_session: BackendSession | None = None
        self._started_mono = 0.0
        self._ended_mono: float | None = None  # rates in stats are frozen here (ListSessions after the end)
        self._backend_name = backend.name
        self._done = asyncio.Event()
        self._on_end: list[Callable[[], None]] = []

    # ------------------------------------------------------------------ control

    def stop(self, reason: str = "stopped") -> None:
        """Ask the session to end; ``run()`` then finishes with ``session_ended``."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            self.source.close()

    async def wait(self) -> None:
        await self._done.wait()

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the session has ended (at once if it has):
        what a session holds beyond its call (a client's slot) is given back here."""
        if self.ended:
            callback()
        else:
            self._on_end.append(callback)

    def input_failed(self, exc: VisionStreamError) -> None:
        """A client's input broke off with ``exc`` (bad message, timeout, rate):
        recorded as an ``error`` event before the session ends, so subscribers
        and ListSessions see why; what was accepted before goes on."""
        self.last_error = exc.message
        if not self.log.closed:
            self.log.append(ErrorEvent(exc.code, exc.message, exc.retryable), self._media.now)

    @property
    def stop_reason(self) -> str:
        return self._stop_reason

    @property
    def ended(self) -> bool:
        return self._done.is_set()

    @property
    def source_state(self) -> str:
        """A live source's connection: "", connecting, streaming, reconnecting, failed."""
        return self._source_health.state

    @property
    def backend_name(self) -> str:
        """The backend in use now (a failover chain reports the link it switched to)."""
        return self._backend_name

    async def client_prompt(self, text: str) -> None:
        """A client's question for the model; answered as commentary."""
        backend = self._backend_session
        if backend is not None and not self.ended:
            self._counters.prompts_sent += 1
            await backend.prompt(text, reason="client", media_time=self._media.now)

    def set_conditions(self, conditions: tuple[Condition, ...]) -> tuple[Condition, ...]:
        """Replace the watch conditions (SetConditions, a Stream message): the engine keeps the
        state of unchanged ones; the backend is told (a no-op for those the pipeline judges)."""
        items = self.conditions.replace(conditions)
        self.settings = replace(self.settings, conditions=self.conditions.judged)
        if self._backend_session is not None and not self.ended:
            set_conditions(self._backend_session, self.conditions.judged)
        return items

    def budget_exhausted(self, exhausted: bool, reason: str) -> None:
        """The hook for the budget governor: the built-in ``budget_exhausted`` condition
        holds while ``exhausted`` (an alert when it starts, a resolved one when it ends)."""
        self._log_alerts(self.conditions.budget_exhausted(exhausted, reason))

    async def tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        backend = self._backend_session
        if backend is not None and not self.ended:
            await backend.send_tool_result(call_id, name, response)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run to the end of input (or ``stop()``); never raises for media/backend failures."""
        reason = "end_of_input"
        try:
            reason = await self._run()
        except VisionStreamError as exc:
            self.state = SessionState.FAILED
            self.last_error = exc.message
            self.log.append(ErrorEvent(exc.code, exc.message, exc.retryable), self._media.now)
            reason = f"failed: {exc.message}"
        except asyncio.CancelledError:
            reason = self._stop_reason or "cancelled"
            self._finish(reason)
            raise
        except Exception as exc:  # a bug: report it in the session, keep the server up
            log.exception("session %s crashed", self.session_id)
            self.state = SessionState.FAILED
            self.last_error = f"internal error: {type(exc).__name__}"
            self.log.append(ErrorEvent("internal", self.last_error, False), self._media.now)
            reason = f"failed: {self.last_error}"
        self._finish(reason)

    def _finish(self, reason: str) -> None:
        self.stop(reason)
        if self._ended_mono is None:
            self._ended_mono = time.monotonic()
        if not self.log.closed:
            self.log.append(SessionEnded(reason=reason, totals=self.stats()), self._media.now)
        if self.state is not SessionState.FAILED:
            # A live source that gave up (bad credentials, attempts exhausted) fails the session.
            self.state = SessionState.FAILED if self.source_state == "failed" else SessionState.ENDED
        self._done.set()
        callbacks, self._on_end = self._on_end, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a bug in a callback must not keep the others from running
                log.exception("session %s: end callback failed", self.session_id)

    async def _run(self) -> str:
        self._started_mono = time.monotonic()
        backend = await self.backend.open(self.settings)
        self._backend_session = backend
        self._backend_name = backend.name
        # A failover chain with a REST link (--backend auto with a key): the budget's last rung.
        self._budget.snapshots_possible = "rest" in getattr(backend, "link_names", ())
        self.log.append(
            SessionStarted(
                source=self.source.description,
                backend=backend.name,
                model=backend.model,
                sampling=self.sampling,
                commentary_interval=self.settings.commentary_interval,
            )
        )
        self.state = SessionState.RUNNING
        reader = SourceReader(source=self.source, sampler=self._sampler, mailbox=self._mailbox, stop=self._stop,
                              counters=self._counters, paced=self.paced, name=f"source-{self.session_id}",
                              pool=shared_pool() if self.paced else None)
        pump = asyncio.create_task(self._pump_events(backend), name=f"events-{self.session_id}")
        clock = asyncio.create_task(self._watch_clock(), name=f"conditions-{self.session_id}")
        try:
            reader.start(asyncio.get_running_loop())
            end = await Feed(mailbox=self._mailbox, backend=backend, log=self.log, counters=self._counters,
                             media=self._media, cadence=self._cadence, stats=self.stats,
                             on_status=self._on_source_status, on_prompt=self._govern,
                             on_frame=self._keep_frame).run()
            self.state = SessionState.ENDING
            if end.error is not None and not self._stop.is_set():
                raise end.error
            await self._drain(backend)
            await asyncio.wait_for(asyncio.shield(pump), BACKEND_CLOSE_TIMEOUT)
            await self.conditions.settle(BACKEND_CLOSE_TIMEOUT)  # second opinions still pending
        finally:
            self._mailbox.close()
            self._stop.set()
            self.source.close()
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
            await self.conditions.settle(0)  # stopped or failed: pending checks are cancelled
            if not pump.done():
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
            # The reader thread ends promptly once the source is closed and the
            # mailbox refuses items; joining off the loop keeps the loop free.
            await asyncio.to_thread(reader.join, _READER_JOIN_TIMEOUT)
        pump_error = pump.exception() if pump.done() and not pump.cancelled() else None
        if pump_error is not None:
            raise pump_error
        return self._stop_reason or "end_of_input"

    async def _drain(self, backend: BackendSession) -> None:
        """End of input: last audio marker, a closing summary, then flush the backend."""
        if self._counters.audio_chunks_sent:
            await backend.end_audio()
        if not self._stop.is_set() or self._stop_reason == "end_of_input":
            if self._govern(self._media.now, closing=True):  # the summary turn fits the budget
                self._counters.prompts_sent += 1
                await backend.prompt("", reason="final", media_time=self._media.now)
        self.log.append(self.stats(), self._media.now)
        await asyncio.wait_for(backend.close(), BACKEND_CLOSE_TIMEOUT)

    async def _pump_events(self, backend: BackendSession) -> None:
        async for event in backend.events():
            if isinstance(event.payload, ConditionVerdict):
                # A backend's judgement of a condition: the engine decides whether it alerts (a
                # second opinion runs in its own task: the pump never waits for it).
                self._log_alerts(self.conditions.verdict(event.payload, event.media_time), event.media_time)
                continue
            self._append_backend_event(event)

    async def _watch_clock(self) -> None:
        """Once a second: conditions that hold by time passing (no frames, reconnecting, fps).
        Wall-clock driven (time.monotonic), so a silent camera alerts with no frame to trigger it."""
        while True:
            await asyncio.sleep(_CLOCK_TICK)
            self._log_alerts(self.conditions.tick(self._counters.frames_in))

    def _log_alerts(self, alerts: list[Alert], media_time: float | None = None) -> None:
        for alert in alerts:
            if self.log.closed:
                return
            self.log.append(alert, self._media.now if media_time is None else media_time)

    def _append_backend_event(self, event: BackendEvent) -> None:
        if isinstance(event.payload, ErrorEvent):
            self.last_error = event.payload.message
        elif isinstance(event.payload, BackendChanged):
            self._backend_name = event.payload.to_backend  # ListSessions shows the link in use
            self.log.append(event.payload, event.media_time)
            self._log_alerts(self.conditions.backend_changed(event.payload.to_backend, event.payload.reason),
                             event.media_time)
            return
        self.log.append(event.payload, event.media_time)

    def _keep_frame(self, frame: SampledFrame) -> SampledFrame:
        """Keep ``frame`` as evidence; it goes to the backend carrying its id, so
        events name the frames they are based on (GetFrames resolves them)."""
        frame_id = self.frames.add(frame.jpeg, frame.media_time, frame.width, frame.height)
        self._log_alerts(self.conditions.frame(frame.media_time, frame_id), frame.media_time)
        return replace(frame, frame_id=frame_id)

    def _govern(self, media_time: float, *, closing: bool = False) -> bool:
        """Before a prompt: whether it fits the budget (a forecast of its turn), and the
        governor's sampling/cadence steps; each hold, resume and step is one retryable
        ``budget`` error event (pipeline/budget.py)."""
        if not self._budget.active:
            return True
        stats = self.stats()
        model = getattr(self._backend_session, "model", "") or ""
        admission = self._budget.admit(
            stats.media_seconds, usage=Usage(dict(stats.usage)), cost_usd=stats.estimated_cost_usd,
            frames_sent=stats.frames_sent, audio_chunks_sent=stats.audio_chunks_sent,
            price=lambda turn: estimate_cost(turn, model), closing=closing)
        for message in admission.messages:
            self.log.append(ErrorEvent("budget", message, retryable=True), media_time)
        if admission.exhausted is not None:  # a hold starts / commentary resumes: the health condition
            self.budget_exhausted(admission.exhausted, admission.messages[-1])
        if admission.change is not None and admission.change.link:  # Live <-> REST: the chain says it
            self._switch_link(admission.change)
        elif admission.change is not None:
            self._sampler.retune(admission.change.sampling)
            self._cadence.interval = admission.change.interval
            self.log.append(ErrorEvent("budget", admission.change.reason, retryable=True), media_time)
        return admission.send

    def _switch_link(self, change: BudgetChange) -> None:
        """The budget's rung after the last: the chain moves to REST snapshots (``prefer``)
        or back (``release``); its one ``backend_changed`` event carries ``change.reason``."""
        chain = self._backend_session
        move = getattr(chain, "prefer", None) if change.link == "rest" else getattr(chain, "release", None)
        if move is None or not (move("rest", change.reason) if change.link == "rest" else move(change.reason)):
            self._budget.refused(change)

    # ------------------------------------------------------------ source status

    def _on_source_status(self, status: SourceStatus) -> None:
        """A live source's connection changed: keep ListSessions state, log events.

        Going away (every failed attempt) is a retryable ``source_unavailable``
        error with the outage so far and the next attempt; coming back is a
        status event (``stats`` with ``source_state="streaming"`` and the
        outage's length); giving up is ``source_failed`` and ends the session
        as failed.
        """
        health = self._source_health
        health.state = status.state
        self._log_alerts(self.conditions.source_state(status.state))
        self.next_attempt_at = None
        if status.state == "reconnecting":
            self.state = SessionState.RECONNECTING
            self.last_error = status.message
            if status.next_attempt_in is not None:
                self.next_attempt_at = time.time() + status.next_attempt_in  # display only
            self.log.append(ErrorEvent("source_unavailable", status.message, status.retryable), self._media.now)
        elif status.state == "streaming":
            if self.state is SessionState.RECONNECTING:
                self.state = SessionState.RUNNING
                health.recoveries += 1
                health.outage_seconds = status.outage_seconds
                self.log.append(self.stats(), self._media.now)
        elif status.state == "failed":
            self.last_error = status.message
            if not self._stop.is_set():
                self._stop_reason = f"failed: {status.message}"
            self.log.append(ErrorEvent("source_failed", status.message, False), self._media.now)

    # -------------------------------------------------------------------- stats

    def stats(self) -> Stats:
        """The session's numbers now (the feed and the pump log them as ``stats`` events)."""
        backend = self._backend_session
        # An ended session's rates stay what they were at its end: ListSessions
        # would otherwise show fps falling for as long as the session is kept.
        until = self._ended_mono if self._ended_mono is not None else time.monotonic()
        elapsed = max(until - self._started_mono, 1e-9) if self._started_mono else 0.0
        stats = build_stats(
            counters=self._counters, media=self._media, mailbox=self._mailbox, sampler=self._sampler,
            backend=backend.counters() if backend is not None else BackendCounters(),
            source=self._source_health, events=self.log.last_seq, elapsed=elapsed,
        )
        return replace(stats, alerts=self.conditions.alerts, alert_candidates_rejected=self.conditions.rejected)
