"""Watch conditions judged by the offline analyzer, through the real pipeline on real footage."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from helpers.paths import SHARED

from vision_stream.backends.local import LocalBackend
from vision_stream.conditions.model import Condition
from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from vision_stream.events import Alert, ErrorEvent, Event
from vision_stream.media.file_source import FileSource
from vision_stream.pipeline import Session

CARS = SHARED / "media" / "intel_car-detection.mp4"  # 30 s of traffic seen from above


@pytest.fixture(scope="module")
def cars() -> Path:
    if not CARS.exists():
        pytest.skip(f"real footage not found: {CARS}")
    return CARS


async def replay(path: Path, *conditions: Condition) -> Session:
    session = Session(
        settings=SessionSettings(session_id="cond", conditions=conditions),
        source=FileSource(path, audio=AudioPolicy()), backend=LocalBackend(),
        sampling=SamplingPolicy(fps=2, max_fps=4), limits=Limits(), paced=False, lossless=True)
    await session.run()
    return session


def alerts(session: Session, condition_id: str) -> list[Event]:
    return [e for e in session.log.snapshot()
            if isinstance(e.payload, Alert) and e.payload.condition_id == condition_id]


async def test_zone_conditions_fire_once_per_cooldown_with_frame_ids_and_resolve(cars: Path) -> None:
    session = await replay(
        cars,
        Condition(id="left-motion", text="motion in the left half", cooldown=8, notify_resolved=True),
        Condition(id="left-car", text="a vehicle in the left half", cooldown=8, min_confidence=0.3),
        Condition(id="zone-car", text="a car zone=0,0,0.5,1", cooldown=8, min_confidence=0.3),
    )
    motion = alerts(session, "left-motion")
    fired = [e for e in motion if e.payload.state == "fired"]
    assert len(fired) >= 2, motion
    times = [e.media_time or 0.0 for e in fired]
    assert all(b - a >= 8 for a, b in itertools.pairwise(times)), times
    # Every FIRED is followed by its RESOLVED before the next FIRED (notify_resolved).
    states = [e.payload.state for e in motion]
    assert states[: 2 * (len(states) // 2)] == ["fired", "resolved"] * (len(states) // 2)
    for event in fired:
        alert = event.payload
        assert alert.backend == "local" and alert.evidence.startswith("motion over") and not alert.builtin
        assert len(alert.frame_ids) == 1
        kept = session.frames.get(alert.frame_ids[0])
        if kept is not None:  # still in the evidence ring: the very frame judged
            assert kept.media_time == pytest.approx(event.media_time)
    cars_left = [e for e in alerts(session, "left-car") if e.payload.state == "fired"]
    assert cars_left and all("vehicle in the left half" in e.payload.evidence for e in cars_left)
    # The words and the explicit zone are the same place: the same alerts.
    assert [e.media_time for e in alerts(session, "zone-car")] == [e.media_time for e in cars_left]
    # The resolved alerts are not repeated without notify_resolved.
    assert all(e.payload.state == "fired" for e in alerts(session, "left-car"))
    totals = session.stats()
    assert totals.alerts == len([e for e in session.log.snapshot() if e.kind == "alert"])


@pytest.mark.slow
async def test_max_triggers_and_a_long_cooldown(cars: Path) -> None:
    session = await replay(
        cars,
        Condition(id="once", text="motion in the left half", cooldown=0, max_triggers=1),
        Condition(id="long", text="motion in the left half", cooldown=3600),
        Condition(id="twice", text="motion in the left half", cooldown=0, max_triggers=2),
    )
    assert len(alerts(session, "once")) == 1
    assert len(alerts(session, "long")) == 1
    assert len(alerts(session, "twice")) == 2


async def test_an_unsupported_condition_is_said_once_and_never_alerts(cars: Path) -> None:
    session = await replay(
        cars,
        Condition(id="door", text="a person is at the front door", cooldown=0),
        Condition(id="fire", text="smoke or fire", cooldown=0),
        Condition(id="left", text="motion in the left half", cooldown=0),
    )
    errors = [e.payload for e in session.log.snapshot() if isinstance(e.payload, ErrorEvent)
              and e.payload.code == "condition_unsupported"]
    assert sorted(m.message.split("'")[1] for m in errors) == ["door", "fire"]
    assert all("cannot evaluate" in m.message for m in errors)
    assert not alerts(session, "door") and not alerts(session, "fire")
    assert alerts(session, "left")
