"""Local cameras (``/dev/videoN`` or an index) through OpenCV's VideoCapture.

Spec forms accepted by :func:`parse_device_spec`: ``/dev/video0``,
``device:0``, ``device:/dev/video0``. The capture is made by an injectable
*capture factory* (default ``cv2.VideoCapture``), so the wiring (reads,
timestamps, reconnect on unplug) is tested with a fake capture object; no
device exists on the build machines.

A local camera is a live source like any other: a failed ``read()`` (cable
pulled, device busy) ends the connection and the
:class:`~vision_stream.media.reconnecting.ReconnectingSource` reopens it with backoff.
Media time is the frame's arrival on the monotonic clock. OpenCV's V4L2
backend blocks in ``read()`` for up to 10 s when a device stops delivering,
which bounds how long ``close()`` can take.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from ..errors import SourceOpenError, UsageError
from .reconnecting import Connection, ConnectionOptions, ReconnectingSource
from .types import MediaItem, VideoFrame

__all__ = ["Capture", "CaptureFactory", "DeviceConnection", "open_device", "parse_device_spec"]

_SPEC = re.compile(r"^(?:device:)?(?P<target>/dev/video\d{1,3}|\d{1,3})$")


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` we use."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


# Opens a capture for an index or a device path; may return an unopened
# capture (``isOpened()`` False) as cv2.VideoCapture does.
CaptureFactory = Callable[[int | str], Capture]


def is_device_spec(spec: str) -> bool:
    return spec.startswith("device:") or spec.startswith("/dev/video")


def parse_device_spec(spec: str) -> int | str:
    """``device:0`` -> 0; ``/dev/video2`` or ``device:/dev/video2`` -> the path."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise UsageError(f"not a camera device: {spec!r} (use /dev/videoN or device:N)")
    target = match.group("target")
    return int(target) if target.isdigit() else target


def _default_factory(target: int | str) -> Capture:
    import cv2

    capture: Any = cv2.VideoCapture(target)
    return capture  # type: ignore[no-any-return]


class DeviceConnection:
    """One open capture; yields every frame read until a read fails."""

    def __init__(self, target: int | str, *, description: str, factory: CaptureFactory,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.description = description
        self._clock = clock
        self._capture = factory(target)
        is_opened = getattr(self._capture, "isOpened", None)
        if callable(is_opened) and not is_opened():
            self._capture.release()
            raise SourceOpenError(f"cannot open camera {description} (missing, busy or no permission)",
                                  retryable=True)

    def items(self, should_stop: Callable[[], bool]) -> Iterator[MediaItem]:
        start = self._clock()
        while not should_stop():
            ok, image = self._capture.read()
            if not ok or image is None:
                raise SourceOpenError(f"camera {self.description} stopped delivering frames", retryable=True)
            if image.ndim == 2:  # some backends hand over grayscale
                import cv2

                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            yield VideoFrame.from_bgr(np.ascontiguousarray(image), media_time=self._clock() - start)

    def interrupt(self) -> None:
        """Nothing to do from another thread: ``release()`` during a ``read()``
        in progress is not safe in OpenCV's V4L2 backend. A delivering camera
        returns a frame per read, after which ``should_stop`` is polled."""

    def close(self) -> None:
        self._capture.release()


def open_device(spec: str, *, options: ConnectionOptions | None = None,
                factory: CaptureFactory | None = None) -> ReconnectingSource:
    """A reconnecting live source for a local camera (no audio: OpenCV captures video only)."""
    target = parse_device_spec(spec)
    opts = options or ConnectionOptions()
    description = f"camera {target}" if isinstance(target, int) else target
    make = factory or _default_factory

    def connect() -> Connection:
        return DeviceConnection(target, description=description, factory=make)

    return ReconnectingSource(description=description, connect=connect, options=opts)
