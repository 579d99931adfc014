"""The alert policy on a fake clock: cooldown, flicker, resolved, max triggers, until, rejection."""

from __future__ import annotations

import asyncio

import pytest

from vision_stream.conditions.engine import ConditionEngine
from vision_stream.conditions.model import Condition, HealthSettings, check_conditions, parse_condition_arg
from vision_stream.conditions.policy import AlertPolicy
from vision_stream.errors import InvalidInputError
from vision_stream.events import ConditionVerdict, Verification


def _v(met: bool, confidence: float = 0.9) -> ConditionVerdict:
    return ConditionVerdict("door", met, confidence, "seen" if met else "", "local")


def _run(policy: AlertPolicy, script: list[tuple[float, bool]], wall: float = 0.0) -> list[tuple[float, str]]:
    out = []
    for now, met in script:
        candidate = policy.observe(_v(met), now=now, wall=wall)
        if candidate is not None:
            out.append((now, candidate.state))
    return out


def test_fires_once_per_cooldown_however_it_flickers() -> None:
    policy = AlertPolicy([Condition(id="door", text="a person", cooldown=10)])
    script = [(t * 0.5, t % 2 == 0) for t in range(60)]  # flips every 0.5 s for 30 s
    assert _run(policy, script) == [(0.0, "fired"), (10.0, "fired"), (20.0, "fired")]


def test_resolved_only_with_notify_resolved_and_only_after_a_fired() -> None:
    policy = AlertPolicy([Condition(id="door", text="a person", cooldown=10, notify_resolved=True)])
    script = [(0, True), (1, True), (2, False), (3, True), (4, False), (12, True), (13, False)]
    # 3 s: inside the cooldown, no FIRED, so its end at 4 s resolves nothing.
    assert _run(policy, script) == [(0, "fired"), (2, "resolved"), (12, "fired"), (13, "resolved")]
    quiet = AlertPolicy([Condition(id="door", text="a person", cooldown=10)])
    assert _run(quiet, script) == [(0, "fired"), (12, "fired")]


def test_an_episode_started_in_the_cooldown_fires_when_it_ends_if_still_holding() -> None:
    policy = AlertPolicy([Condition(id="door", text="a person", cooldown=10)])
    assert _run(policy, [(0, True), (1, False), (2, True), (5, True), (10, True), (11, True)]) == [
        (0, "fired"), (10, "fired")]


def test_low_confidence_changes_nothing() -> None:
    policy = AlertPolicy([Condition(id="door", text="a person", cooldown=0, min_confidence=0.7,
                                    notify_resolved=True)])
    assert policy.observe(_v(True, 0.6), now=0, wall=0) is None
    assert policy.observe(_v(True, 0.8), now=1, wall=0) is not None
    assert policy.observe(_v(True, 0.1), now=2, wall=0) is None  # neither true nor false: no resolve
    resolved = policy.observe(_v(False), now=3, wall=0)
    assert resolved is not None and resolved.state == "resolved"


def test_max_triggers_and_until() -> None:
    policy = AlertPolicy([Condition(id="door", text="a person", cooldown=0, max_triggers=2, notify_resolved=True)])
    script = [(t, t % 2 == 0) for t in range(10)]
    assert _run(policy, script) == [(0, "fired"), (1, "resolved"), (2, "fired"), (3, "resolved")]
    timed = AlertPolicy([Condition(id="door", text="a person", cooldown=0, until=100.0)])
    assert _run(timed, [(0, True), (1, False)], wall=99.0) == [(0, "fired")]
    assert _run(timed, [(2, True)], wall=100.0) == []


def test_replace_keeps_the_state_of_an_unchanged_condition() -> None:
    policy = AlertPolicy([Condition(id="door", text="a person", cooldown=10)])
    assert _run(policy, [(0, True), (1, False)]) == [(0, "fired")]
    policy.replace([Condition(id="door", text="a person", cooldown=10), Condition(id="x", text="a car")])
    assert _run(policy, [(2, True)]) == []  # still cooling down
    policy.replace([Condition(id="door", text="a person at the gate", cooldown=10)])
    assert _run(policy, [(3, False), (4, True)]) == [(4, "fired")]  # new text: a new condition


class _Rejecting:
    def __init__(self) -> None:
        self.asked = 0

    async def verify(self, condition: Condition, verdict: ConditionVerdict, frame_ids: tuple[int, ...]) -> Verification:
        self.asked += 1
        return Verification(requested=True, confirmed=False, backend="rest", evidence="no")


def test_a_rejected_candidate_is_counted_not_alerted_and_not_asked_again_this_episode() -> None:
    engine = ConditionEngine([Condition(id="door", text="a person", cooldown=0, verify=True, notify_resolved=True)])
    verifier = _Rejecting()
    engine.verifier = verifier

    async def feed(script: list[bool]) -> list[str]:
        out = []
        for i, met in enumerate(script):
            out += [a.state for a in engine.verdict(_v(met), float(i), wall=0.0)]
            await asyncio.sleep(0.01)  # the check runs in its own task (the session's pump goes on)
        await engine.settle(1.0)
        return out + [a.state for a in engine.late]

    assert asyncio.run(feed([True, True, False, True])) == []
    assert (engine.rejected, verifier.asked, engine.alerts) == (2, 2, 0)


def test_validation_names_the_field() -> None:
    with pytest.raises(InvalidInputError, match="id must be"):
        Condition(id="bad id!", text="x")
    with pytest.raises(InvalidInputError, match=r"text is 501 characters"):
        Condition(id="a", text="x" * 501)
    with pytest.raises(InvalidInputError, match="min_confidence"):
        Condition(id="a", text="x", min_confidence=1.5)
    with pytest.raises(InvalidInputError, match="at most 16"):
        check_conditions(Condition(id=f"c{i}", text="x") for i in range(17))
    with pytest.raises(InvalidInputError, match="given twice"):
        check_conditions([Condition(id="a", text="x"), Condition(id="a", text="y")])
    with pytest.raises(InvalidInputError, match=r"health\.fps_min"):
        HealthSettings(fps_min=5, fps_max=2)


def test_cli_condition_syntax() -> None:
    c = parse_condition_arg("id=door;cooldown=30;notify_resolved=1;a person in the left half")
    assert (c.id, c.cooldown, c.notify_resolved, c.text) == ("door", 30.0, True, "a person in the left half")
    plain = parse_condition_arg("a car enters; slowly")
    assert plain.text == "a car enters; slowly" and plain.id == "a-car-enters-slowly"
    with pytest.raises(InvalidInputError, match="cooldown is not a number"):
        parse_condition_arg("cooldown=soon;a car")
