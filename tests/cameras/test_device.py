"""Local cameras through OpenCV, wired to an injected capture (no device exists on build machines).

What is and is not covered: spec parsing, frames and timestamps from read(),
a failed read (unplug) reconnecting through the backoff, a capture that does
not open. Not covered: a real V4L2 device (none here), OpenCV's own blocking
behaviour on a wedged device (its V4L2 select timeout is 10 s).
"""

from __future__ import annotations

import numpy as np
import pytest

from vision_stream.errors import UsageError
from vision_stream.media.device import open_device, parse_device_spec
from vision_stream.media.open import open_source
from vision_stream.media.reconnecting import ConnectionOptions
from vision_stream.media.types import SourceStatus, VideoFrame
from vision_stream.retry import RetryPolicy

OPTIONS = ConnectionOptions(reconnect=RetryPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=3))


class FakeCapture:
    """read() gives ``frames`` pictures then fails (cable pulled); release() is recorded."""

    def __init__(self, frames: int, *, opened: bool = True, gray: bool = False) -> None:
        self.frames = frames
        self.opened = opened
        self.gray = gray
        self.released = False

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.frames == 0:
            return False, None
        self.frames -= 1
        shape = (48, 64) if self.gray else (48, 64, 3)
        return True, np.full(shape, 100, np.uint8)

    def release(self) -> None:
        self.released = True


def test_device_specs() -> None:
    assert parse_device_spec("device:0") == 0
    assert parse_device_spec("/dev/video2") == "/dev/video2"
    assert parse_device_spec("device:/dev/video10") == "/dev/video10"
    with pytest.raises(UsageError, match="not a camera device"):
        parse_device_spec("device:../../etc/passwd")


def test_frames_flow_and_an_unplugged_camera_is_reopened() -> None:
    made: list[FakeCapture] = []
    script = [FakeCapture(5), FakeCapture(0, opened=False), FakeCapture(3, gray=True)]

    def factory(target: int | str) -> FakeCapture:
        assert target == 0
        made.append(script.pop(0) if script else FakeCapture(0, opened=False))
        return made[-1]

    source = open_device("device:0", options=OPTIONS, factory=factory)
    items = list(source.items())
    frames = [i for i in items if isinstance(i, VideoFrame)]
    states = [i.state for i in items if isinstance(i, SourceStatus)]
    assert len(frames) == 8 and all(f.to_bgr().shape == (48, 64, 3) for f in frames)
    assert [f.media_time for f in frames] == sorted(f.media_time for f in frames)
    assert states[:4] == ["connecting", "streaming", "reconnecting", "reconnecting"]
    assert states[-1] == "failed" and all(c.released for c in made)
    messages = [i.message for i in items if isinstance(i, SourceStatus) and i.state == "reconnecting"]
    assert "stopped delivering frames" in messages[0] and "cannot open camera" in messages[1]


def test_open_source_dispatches_devices() -> None:
    source = open_source("/dev/video7", audio=None, connection=OPTIONS)
    assert source.live and source.description == "/dev/video7"
    source.close()
