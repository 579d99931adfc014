"""The sampled JPEGs a session's model saw, by id: the evidence behind its events.

What ``/frames/latest`` and ``/frames/{id}`` serve, what ``GetFrames`` returns
and what a frame-only source's ``ExportClip`` is made of. Bounded three ways,
by media seconds, by bytes and by count (``Limits.evidence_*``: 10 minutes,
64 MiB, 3600 frames by default), so neither a long session nor a
high-resolution source grows it past its bounds; the oldest frames go first.
Ids count from 1 per session and never repeat, so an id in an event names one
frame for the session's whole life (evicted ids are simply gone).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from ..config import EVIDENCE_BYTES, EVIDENCE_FRAMES, EVIDENCE_SECONDS
from ..errors import UsageError

__all__ = ["DEFAULT_RING_BYTES", "DEFAULT_RING_FRAMES", "DEFAULT_RING_SECONDS", "FrameRing", "RingFrame"]

DEFAULT_RING_FRAMES = EVIDENCE_FRAMES
DEFAULT_RING_BYTES = EVIDENCE_BYTES
DEFAULT_RING_SECONDS = EVIDENCE_SECONDS


@dataclass(frozen=True, slots=True)
class RingFrame:
    """One sampled JPEG as the backend received it."""

    frame_id: int
    media_time: float
    jpeg: bytes
    width: int
    height: int
    wall_time: float = 0.0  # time.time() when it went to the backend


class FrameRing:
    """The newest sampled frames: at most ``max_frames``, ``max_bytes`` of JPEG and
    ``max_seconds`` of media time from the oldest to the newest.

    Written by the feed (event loop) and read by request handlers on the same
    loop: no lock needed (an export snapshots its frames on the loop first).
    """

    def __init__(self, max_frames: int = DEFAULT_RING_FRAMES, max_bytes: int = DEFAULT_RING_BYTES,
                 max_seconds: float = DEFAULT_RING_SECONDS) -> None:
        if max_frames < 1 or max_bytes < 1 or not max_seconds > 0:
            raise UsageError("a frame ring holds at least one frame, one byte and some seconds")
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._frames: deque[RingFrame] = deque()
        self._bytes = 0
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def add(self, jpeg: bytes, media_time: float, width: int = 0, height: int = 0,
            wall_time: float | None = None) -> int:
        """Keep ``jpeg``; returns its id. A JPEG bigger than ``max_bytes`` gets an id
        but is not kept (the ring never exceeds its byte bound)."""
        frame = RingFrame(self._next_id, media_time, jpeg, width, height,
                          time.time() if wall_time is None else wall_time)
        self._next_id += 1
        if len(jpeg) > self.max_bytes:
            return frame.frame_id
        self._frames.append(frame)
        self._bytes += len(jpeg)
        while (len(self._frames) > self.max_frames or self._bytes > self.max_bytes
               or media_time - self._frames[0].media_time > self.max_seconds):
            self._bytes -= len(self._frames.popleft().jpeg)
        return frame.frame_id

    def latest(self) -> RingFrame | None:
        return self._frames[-1] if self._frames else None

    def oldest(self) -> RingFrame | None:
        return self._frames[0] if self._frames else None

    def get(self, frame_id: int) -> RingFrame | None:
        """The frame with ``frame_id`` while it is still held."""
        if not self._frames or not self._frames[0].frame_id <= frame_id <= self._frames[-1].frame_id:
            return None
        # Ids are increasing but not contiguous (an oversize JPEG skips one): search.
        for frame in reversed(self._frames):
            if frame.frame_id == frame_id:
                return frame
        return None

    def span(self, start: float, end: float) -> list[RingFrame]:
        """The held frames with ``start <= media_time <= end``, oldest first."""
        return [f for f in self._frames if start <= f.media_time <= end]

    def retained(self) -> str:
        """What is held, for error messages: ``"frames 12-40, media 3.0-17.5 s"``."""
        if not self._frames:
            return "no frames"
        first, last = self._frames[0], self._frames[-1]
        return (f"frames {first.frame_id}-{last.frame_id}, media {first.media_time:.3f}-"
                f"{last.media_time:.3f} s")
