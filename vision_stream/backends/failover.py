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

Modules: this one is the chain's face (policy, backend, session);
``failover_switch`` switches (pumps, switch down/up, the probe task),
``failover_inputs`` forwards inputs and replays them to a new link, and
``failover_health`` schedules probes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from ..conditions.model import Condition
from ..config import SessionSettings
from ..errors import BackendError, UsageError
from ..events import BackendEvent
from ..media.types import AudioChunk, SampledFrame
from ..retry import RetryPolicy
from .base import Backend, BackendCounters
from .failover_inputs import ActiveLink
from .failover_switch import Switcher
from .session_core import SessionCore

__all__ = ["FailoverBackend", "FailoverPolicy", "FailoverSession", "Link"]


@dataclass(frozen=True, kw_only=True, slots=True)
class FailoverPolicy:
    """How the chain switches and probes. Seconds.

    open_timeout: longest a link may take to open (connect + setup) before it counts as failed.
    hedge_after: at the start, while the best candidate link is still opening, the next one
        starts opening too after this long (an unreachable Live then costs one connect
        timeout, not that plus the REST check; a lower link that opened unused is closed).
    probe_base / probe_max / probe_jitter: probe backoff of failed links (delay doubles per failure).
    permanent_penalty: extra doublings for a permanent failure (bad key, unknown model).
    drain_timeout: how long a switch waits for the old link's last events.
    event_queue: events buffered for the consumer before links wait.
    carry_over: recent final commentary items handed to the next link.
    replay_frames / replay_audio: the backlog replayed to the link taking over after a failure
        (``failover_inputs``): sampled frames and audio chunks since the current link last answered.
    """

    open_timeout: float = 15.0
    hedge_after: float = 0.5
    probe_base: float = 5.0
    probe_max: float = 300.0
    probe_jitter: float = 0.2
    permanent_penalty: int = 3
    drain_timeout: float = 5.0
    event_queue: int = 1024
    carry_over: int = 6
    replay_frames: int = 16
    replay_audio: int = 600

    def __post_init__(self) -> None:
        if min(self.open_timeout, self.probe_base, self.drain_timeout, self.hedge_after) <= 0:
            raise UsageError("open_timeout, probe_base, drain_timeout and hedge_after must be > 0 seconds")
        if self.probe_max < self.probe_base:
            raise UsageError("probe_max must be >= probe_base")
        if not 0 <= self.probe_jitter <= 1 or self.permanent_penalty < 0:
            raise UsageError("probe_jitter must be in [0, 1], permanent_penalty >= 0")
        if self.event_queue < 1 or self.carry_over < 0:
            raise UsageError("event_queue must be >= 1 and carry_over >= 0")
        if self.replay_frames < 1 or self.replay_audio < 0:
            raise UsageError("replay_frames must be >= 1 and replay_audio >= 0")

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
    switching itself (pumps, switch down and up, probing) is
    :class:`~vision_stream.backends.failover_switch.Switcher`, the input side
    (forwarding, what a new link is shown) its
    :class:`~vision_stream.backends.failover_inputs.LinkInputs`.
    """

    def __init__(self, links: Sequence[Link], settings: SessionSettings, policy: FailoverPolicy) -> None:
        self._core = SessionCore(label="failover session", session_id=settings.session_id,
                                 event_queue=policy.event_queue)
        self._chain = Switcher(tuple(links), settings, policy, self._core, on_current=self._on_current)
        self._inputs = self._chain.inputs
        # BackendSession attributes: the current link's name and model (updated at each switch).
        self.name = links[0].name
        self.model = ""

    # ---- what the pipeline and tests read --------------------------------------------------

    def _on_current(self, active: ActiveLink) -> None:
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
    def frames_dropped(self) -> int:
        """Frames the chain dropped while switching (superseded before any link saw them)."""
        return self._inputs.frames_dropped

    @property
    def audio_chunks_dropped(self) -> int:
        return self._inputs.audio_chunks_dropped

    @property
    def failure(self) -> BackendError | None:
        """Why the whole chain failed (every link did), or None while it runs."""
        return self._core.failure

    async def start(self) -> None:
        await self._chain.start()

    def prefer(self, name: str, reason: str) -> bool:
        """Switch to the link ``name`` on request and stay on it (one ``backend_changed``
        with ``reason``); the budget governor's last rung: Live -> REST snapshots."""
        return self._chain.prefer(name, reason)

    def release(self, reason: str) -> bool:
        """Undo :meth:`prefer`: back to the best link (one ``backend_changed`` with ``reason``)."""
        return self._chain.release(reason)

    @property
    def link_names(self) -> tuple[str, ...]:
        return self._chain.link_names

    # ---- input ---------------------------------------------------------------------------

    async def send_frame(self, frame: SampledFrame) -> None:
        """Forward to the current link. While switching a frame is not forwarded; it is dropped
        (counted) when a newer one supersedes it, and the newest is shown to the new link."""
        self._core.check_usable()
        await self._inputs.frame(frame)

    async def send_audio(self, chunk: AudioChunk) -> None:
        """Forward to the current link; dropped (counted) while switching."""
        self._core.check_usable()
        await self._inputs.audio(chunk)

    async def end_audio(self) -> None:
        self._core.check_usable()
        await self._inputs.forward(lambda s: s.end_audio())

    async def send_tool_result(self, call_id: str, name: str, response: dict[str, object]) -> None:
        self._core.check_usable()
        await self._inputs.forward(lambda s: s.send_tool_result(call_id, name, response))

    async def prompt(self, text: str, *, reason: str, media_time: float | None = None) -> None:
        """Forward to the current link (remembered until answered); one waits while switching."""
        self._core.check_usable()
        await self._inputs.ask((text, reason, media_time))

    def set_conditions(self, conditions: Sequence[Condition]) -> None:
        """Watch conditions changed: the current link is told, links opened later start with them."""
        self._chain.set_conditions(conditions)

    def carry_over(self, commentary: Sequence[tuple[float | None, str]]) -> None:
        """Seed the recent commentary (for chains inside chains)."""
        self._inputs.commentary.extend(commentary)

    # ---- output --------------------------------------------------------------------------

    def events(self) -> AsyncIterator[BackendEvent]:
        """Every link's events in order, with a ``backend_changed`` at each switch."""
        return aiter(self._core.events)

    def counters(self) -> BackendCounters:
        """Counts of every link so far (summed) plus the chain's own drops."""
        return self._chain.link_counters() + self._inputs.counters()

    async def close(self) -> None:
        """Finish a running switch, flush the current link, end ``events()``. Idempotent."""
        if self._core.begin_close():
            await self._chain.close()
