"""Value types that flow from sources through the sampler to backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

import numpy as np


class VideoFrame:
    """One decoded (or pushed) picture, with its media time.

    Pixels are materialised lazily: ``to_bgr()`` / ``thumbnail_gray()`` convert
    on first use, so a frame that is neither sampled nor probed for scene
    changes is never converted. ``loader`` returns a BGR ``uint8`` array;
    ``gray_loader`` (optional) returns a small grayscale array cheaply, e.g. by
    letting swscale or the JPEG decoder scale down. ``scaled_loader``
    (optional) returns BGR pixels at a given size in one step (swscale scales
    before it converts colours, far cheaper than full-size BGR then resize).
    """

    __slots__ = ("media_time", "pts", "time_base", "width", "height", "keyframe", "_loader", "_gray_loader",
                 "_scaled_loader", "_bgr", "_scaled")

    def __init__(
        self,
        *,
        media_time: float,
        width: int,
        height: int,
        loader: Callable[[], np.ndarray],
        gray_loader: Callable[[int, int], np.ndarray] | None = None,
        pts: int | None = None,
        time_base: Fraction | None = None,
        keyframe: bool = False,
        scaled_loader: Callable[[int, int], np.ndarray] | None = None,
    ) -> None:
        self.media_time = media_time  # seconds
        self.pts = pts
        self.time_base = time_base
        self.width = width
        self.height = height
        self.keyframe = keyframe
        self._loader = loader
        self._gray_loader = gray_loader
        self._scaled_loader = scaled_loader
        self._bgr: np.ndarray | None = None
        self._scaled = False  # BGR pixels were produced at a reduced size

    @classmethod
    def from_bgr(cls, bgr: np.ndarray, *, media_time: float, pts: int | None = None,
                 time_base: Fraction | None = None) -> VideoFrame:
        frame = cls(media_time=media_time, width=bgr.shape[1], height=bgr.shape[0],
                    loader=lambda: bgr, pts=pts, time_base=time_base)
        frame._bgr = bgr
        return frame

    @property
    def converted(self) -> bool:
        """True once BGR pixels (full size, or scaled by ``bgr_resized``) were materialised."""
        return self._bgr is not None or self._scaled

    def to_bgr(self) -> np.ndarray:
        """Full-size BGR24 pixels (H, W, 3) uint8; converted once, then cached."""
        if self._bgr is None:
            self._bgr = self._loader()
        return self._bgr

    def bgr_resized(self, width: int, height: int) -> np.ndarray:
        """BGR24 pixels scaled to ``width`` x ``height`` (area averaging); not cached.

        Uses the one-pass ``scaled_loader`` when there is one and full-size
        pixels were not materialised yet; otherwise resizes ``to_bgr()``.
        """
        if (width, height) == (self.width, self.height):
            return self.to_bgr()
        if self._scaled_loader is not None and self._bgr is None:
            self._scaled = True
            return self._scaled_loader(width, height)
        import cv2

        return cv2.resize(self.to_bgr(), (width, height), interpolation=cv2.INTER_AREA)

    def thumbnail_gray(self, width: int, height: int) -> np.ndarray:
        """A small grayscale (height, width) uint8 picture for change detection."""
        if self._gray_loader is not None and self._bgr is None:
            return self._gray_loader(width, height)
        import cv2

        gray = cv2.cvtColor(self.to_bgr(), cv2.COLOR_BGR2GRAY)
        return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)

    def __repr__(self) -> str:
        return f"VideoFrame(t={self.media_time:.3f}s, {self.width}x{self.height}, pts={self.pts})"


@dataclass(frozen=True, slots=True)
class SampledFrame:
    """A frame chosen for analysis: the JPEG sent to models plus its pixels.

    ``pixels`` is the BGR array at the encoded size (longest side <= max_side),
    for analyzers that work on pixels rather than JPEG.
    """

    media_time: float  # seconds
    jpeg: bytes
    width: int
    height: int
    pixels: np.ndarray = field(repr=False)
    reason: str = "cadence"  # "cadence" or "scene"
    scene_score: float = 0.0  # thumbnail change that triggered/accompanied the sample
    index: int = 0  # 0-based count of sampled frames in the session
    decoded_at: float = 0.0  # time.monotonic() when the source frame was decoded
    # The session's evidence id (pipeline/frame_ring.py), set as the frame goes to
    # the backend; 0: not kept (a frame outside a session, e.g. a snapshot).
    frame_id: int = 0


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """PCM16 little-endian mono audio at ``sample_rate`` Hz."""

    pcm: bytes
    media_time: float  # seconds, of the first sample
    sample_rate: int = 16000

    @property
    def duration(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate

    def samples(self) -> np.ndarray:
        return np.frombuffer(self.pcm, dtype="<i2")


@dataclass(frozen=True, slots=True)
class BadPacket:
    """A packet/frame that failed to decode: counted and reported, never fatal."""

    media_time: float | None
    message: str


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A change in a live source's connection, e.g. a camera dropping and coming back.

    state: "connecting", "streaming", "reconnecting", "failed".
    """

    state: str
    message: str = ""
    retryable: bool = True
    outage_seconds: float = 0.0
    next_attempt_in: float | None = None


# What sources yield. Audio is already in the session's format (see
# config.AudioPolicy: PCM16 mono 16 kHz in 20-100 ms chunks): each source
# resamples with media.audio, recreating its resampler when the input changes.
MediaItem = VideoFrame | AudioChunk | BadPacket | SourceStatus


class MediaSource(Protocol):
    """A source of media items, read in a worker thread (blocking iteration).

    ``live`` sources (cameras, pushed streams) are never paced by us; file
    sources are paced at source speed unless the session runs fast.
    ``description`` is safe to show: credentials are redacted.
    """

    description: str
    live: bool

    def items(self) -> Iterator[MediaItem]:
        """Blocking iterator of decoded items in media-time order; ends at end of input."""
        ...

    def close(self) -> None:
        """Stop producing (may be called from another thread); items() then ends soon."""
        ...
