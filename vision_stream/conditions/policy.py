"""When a verdict becomes an alert: the per-condition state machine (pure: no I/O, time passed in).

Per condition::

                 true (met, confidence >= min_confidence)
    CLEAR ───────────────────────────────────────────────▶ HOLDING ── FIRED candidate, unless
      ▲                                                       │       in cooldown / exhausted / past until
      └──────── false (met=false) ── RESOLVED if an alert ────┘
                                     fired for this episode and notify_resolved

* a verdict that is met below ``min_confidence`` changes nothing (neither true nor false);
* within ``cooldown`` of the last FIRED no new FIRED, however often the verdict
  flickers; an episode that began inside the cooldown and still holds when it
  ends fires then (the next verdict after the cooldown);
* after ``max_triggers`` FIRED (0 = unlimited), or past ``until`` (wall time),
  nothing fires any more (the RESOLVED of the last episode still does);
* verification hook: :meth:`AlertPolicy.observe` returns *candidates*; a
  verifier (issue 12 item 2) may reject a FIRED one: :meth:`AlertPolicy.reject`
  rolls the trigger back (it does not count toward max_triggers or the cooldown;
  the episode is not asked about again and resolves silently) and counts it in ``rejected``.

``now`` is the condition's clock in seconds (media time for backend verdicts,
``time.monotonic()`` for built-in health conditions); ``wall`` is seconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..events import ConditionVerdict
from .model import Condition

__all__ = ["AlertPolicy", "Candidate"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An alert the policy would emit: ``state`` "fired" or "resolved", with the verdict behind it."""

    condition: Condition
    state: str
    verdict: ConditionVerdict


@dataclass(slots=True)
class _State:
    holding: bool = False  # the condition holds now
    alerted: bool = False  # a FIRED went out for the current episode
    last_fired: float | None = None
    previous_fired: float | None = None  # restored when a candidate is rejected
    triggers: int = 0
    silent: bool = False  # the episode's FIRED was rejected: no re-fire, no RESOLVED


class AlertPolicy:
    """The state of every condition of one session."""

    def __init__(self, conditions: Iterable[Condition] = ()) -> None:
        self._conditions: dict[str, Condition] = {}
        self._states: dict[str, _State] = {}
        self.rejected = 0
        self.replace(conditions)

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return tuple(self._conditions.values())

    def get(self, condition_id: str) -> Condition | None:
        return self._conditions.get(condition_id)

    def replace(self, conditions: Iterable[Condition]) -> None:
        """A new set (SetConditions). A condition kept with the same text keeps its state
        (its cooldown and trigger count go on); a changed or new one starts clear."""
        old_conditions, old_states = self._conditions, self._states
        self._conditions = {c.id: c for c in conditions}
        self._states = {}
        for cid, condition in self._conditions.items():
            before = old_conditions.get(cid)
            keep = before is not None and before.text == condition.text
            self._states[cid] = old_states[cid] if keep else _State()

    def observe(self, verdict: ConditionVerdict, *, now: float, wall: float) -> Candidate | None:
        """One verdict in; at most one candidate alert out (None for unknown conditions)."""
        condition = self._conditions.get(verdict.condition_id)
        if condition is None:
            return None
        state = self._states[condition.id]
        if verdict.met and verdict.confidence < condition.min_confidence:
            return None  # not sure enough either way
        if not verdict.met:
            return self._clear(condition, state, verdict)
        state.holding = True
        if state.alerted or not self._may_fire(condition, state, now, wall):
            return None
        state.alerted = True
        state.previous_fired, state.last_fired = state.last_fired, now
        state.triggers += 1
        return Candidate(condition, "fired", verdict)

    def _clear(self, condition: Condition, state: _State, verdict: ConditionVerdict) -> Candidate | None:
        was_alerted = state.holding and state.alerted and not state.silent
        state.holding = state.alerted = state.silent = False
        if was_alerted and condition.notify_resolved:
            return Candidate(condition, "resolved", verdict)
        return None

    @staticmethod
    def _may_fire(condition: Condition, state: _State, now: float, wall: float) -> bool:
        if condition.until is not None and wall >= condition.until:
            return False
        if condition.max_triggers and state.triggers >= condition.max_triggers:
            return False
        return state.last_fired is None or now - state.last_fired >= condition.cooldown

    def reject(self, condition_id: str, fired_at: float | None = None) -> None:
        """A verifier rejected the FIRED candidate of ``condition_id`` (fired at ``fired_at``):
        undo its trigger. The answer may come late (the check runs beside the session): an
        episode that already ended is not silenced (the next one alerts normally), and the
        cooldown is rolled back only if no later FIRED replaced it."""
        state = self._states.get(condition_id)
        self.rejected += 1
        if state is None:
            return
        state.triggers = max(0, state.triggers - 1)
        if fired_at is None or state.last_fired == fired_at:  # the episode fired last
            if state.holding and state.alerted:
                state.silent = True  # alerted stays set: the episode does not ask again
            state.last_fired = state.previous_fired

    def holding(self, condition_id: str) -> bool:
        state = self._states.get(condition_id)
        return state is not None and state.holding
