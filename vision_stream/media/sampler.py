"""Choose which frames go to the model: a base rate plus scene changes, on media time.

:class:`FrameSampler` is sans-I/O and clock-free: every decision uses the
frame's ``media_time`` only, so a file replayed at source speed and the same
file decoded as fast as possible yield the same samples.

Rules (``SamplingPolicy``):

- *cadence*: slots at ``t0 + k / fps`` (``t0`` = first frame's media time); the
  first frame at or after a slot is sampled; slots missed in a gap are skipped,
  never caught up in a burst.
- *scene*: every ``1 / probe_fps`` seconds of media time a small gray thumbnail
  is compared with the previous probe's (mean absolute difference / 255); a
  score >= ``scene_threshold`` samples the frame with ``reason="scene"``.
- *cap*: no two samples closer than ``1 / max_fps`` seconds of media time. A
  due cadence slot or a detected scene change waits (stays pending) until the
  cap allows, rather than being lost.

Only sampled frames are converted to BGR pixels, straight at the encoded size
(swscale scales and converts in one pass); probed frames only pay for a
thumbnail (swscale/JPEG scaled decoding); the rest cost nothing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..config import SamplingPolicy
from .image import encode_jpeg, fit_within
from .types import SampledFrame, VideoFrame

__all__ = ["THUMB_SIZE", "FrameSampler", "SampleDecision", "scene_score"]

THUMB_SIZE = (64, 36)  # (width, height) of scene-change thumbnails, pixels
# Float slack on slot comparisons (seconds): k/fps computed in floats must not
# miss a frame whose timestamp is exactly on the slot.
_EPS = 1e-6
# A timestamp this far (seconds) behind the previous frame is a reset (new
# stream, looped push, pts wrap), not reordering: restart the slot grid.
_BACKWARD_RESET = 1.0
_TIMING_WINDOW = 512  # encode timings kept for percentiles


def scene_score(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute difference of two same-size uint8 gray thumbnails, 0..1."""
    diff = np.abs(previous.astype(np.int16) - current.astype(np.int16))
    return float(diff.mean()) / 255.0


@dataclass(frozen=True, slots=True)
class SampleDecision:
    """Why a frame was chosen: ``reason`` is "cadence" or "scene"; ``scene_score``
    is the latest probe's score (0 when the frame was not probed)."""

    reason: str
    scene_score: float
    index: int


class FrameSampler:
    """Decide (``decide``) and encode (``encode``) sampled frames; ``offer`` does both.

    The split lets a caller keep decisions in the decode thread and run the
    encode elsewhere (an executor); ``offer`` is the simple path.

    Counters: ``frames_in``, ``probes``, ``sampled``, ``scene_samples``.
    ``encode_ms`` holds the latest encode timings (milliseconds, bounded);
    ``encode_percentile(p)`` summarises them.
    """

    def __init__(self, policy: SamplingPolicy, *, thumb_size: tuple[int, int] = THUMB_SIZE) -> None:
        self.policy = policy
        self.thumb_size = thumb_size
        self._interval = 1.0 / policy.fps  # seconds between cadence slots
        self._probe_interval = 1.0 / policy.probe_fps  # seconds between probes
        self._min_gap = 1.0 / policy.max_fps  # seconds between any two samples
        self._t0: float | None = None
        self._last_t: float | None = None
        self._next_slot = 0.0
        self._next_probe = 0.0
        self._last_sample: float | None = None
        self._prev_thumb: np.ndarray | None = None
        self._pending_scene: float | None = None  # score of a change waiting for the cap
        self.frames_in = 0
        self.probes = 0
        self.sampled = 0
        self.scene_samples = 0
        self.encode_ms: deque[float] = deque(maxlen=_TIMING_WINDOW)

    def retune(self, policy: SamplingPolicy) -> None:
        """New rates and threshold mid-session (the budget governor). Called from the
        event loop while the source thread samples: plain attribute stores, atomic under
        the GIL; the next decisions use them, the media-time grid is kept."""
        self.policy = policy
        self._interval = 1.0 / policy.fps
        self._min_gap = 1.0 / policy.max_fps

    # -- decisions ---------------------------------------------------------

    def decide(self, frame: VideoFrame) -> SampleDecision | None:
        """Return a decision if ``frame`` should be sampled, else None (no pixels touched
        unless the frame is a probe, which costs one thumbnail)."""
        t = frame.media_time
        self.frames_in += 1
        if self._t0 is None or (self._last_t is not None and t < self._last_t - _BACKWARD_RESET):
            self._restart(t)
        self._last_t = t

        score = 0.0
        if t + _EPS >= self._next_probe:
            score = self._probe(frame)
            self._next_probe = self._next_grid(t, self._probe_interval)
            if score >= self.policy.scene_threshold:
                self._pending_scene = max(score, self._pending_scene or 0.0)

        cadence_due = t + _EPS >= self._next_slot
        if not (cadence_due or self._pending_scene is not None):
            return None
        if self._last_sample is not None and t - self._last_sample + _EPS < self._min_gap:
            return None  # capped: stays pending, decided again on a later frame

        if self._pending_scene is not None:
            reason, score = "scene", self._pending_scene
            self.scene_samples += 1
        else:
            reason = "cadence"
        self._pending_scene = None
        if cadence_due:
            self._next_slot = self._next_grid(t, self._interval)
        self._last_sample = t
        decision = SampleDecision(reason=reason, scene_score=score, index=self.sampled)
        self.sampled += 1
        return decision

    def encode(self, frame: VideoFrame, decision: SampleDecision, *, decoded_at: float = 0.0) -> SampledFrame:
        """Resize (longest side <= max_side) and JPEG-encode a chosen frame."""
        start = time.perf_counter()
        # Scale before converting colours (one swscale pass for decoded frames):
        # full-size BGR then cv2.resize cost ~5x more at 720p, ~10x at 1080p.
        width, height = fit_within(frame.width, frame.height, self.policy.max_side)
        pixels = frame.bgr_resized(width, height)
        jpeg = encode_jpeg(pixels, self.policy.jpeg_quality)
        self.encode_ms.append((time.perf_counter() - start) * 1000.0)
        return SampledFrame(
            media_time=frame.media_time,
            jpeg=jpeg,
            width=pixels.shape[1],
            height=pixels.shape[0],
            pixels=pixels,
            reason=decision.reason,
            scene_score=decision.scene_score,
            index=decision.index,
            decoded_at=decoded_at,
        )

    def offer(self, frame: VideoFrame, *, decoded_at: float | None = None) -> SampledFrame | None:
        """Decide and, if chosen, encode. ``decoded_at`` is a time.monotonic() stamp."""
        decision = self.decide(frame)
        if decision is None:
            return None
        return self.encode(frame, decision, decoded_at=time.monotonic() if decoded_at is None else decoded_at)

    def encode_percentile(self, p: float) -> float:
        """The ``p``-th percentile (0..100) of recent encode times, milliseconds (0 if none)."""
        if not self.encode_ms:
            return 0.0
        return float(np.percentile(np.fromiter(self.encode_ms, dtype=float), p))

    # -- internals ---------------------------------------------------------

    def _restart(self, t: float) -> None:
        self._t0 = t
        self._next_slot = t
        self._next_probe = t
        self._last_sample = None
        self._prev_thumb = None
        self._pending_scene = None

    def _next_grid(self, t: float, interval: float) -> float:
        """The first slot ``t0 + k * interval`` strictly after ``t`` (skips missed slots)."""
        assert self._t0 is not None
        k = math.floor((t - self._t0) / interval + _EPS) + 1
        return self._t0 + k * interval

    def _probe(self, frame: VideoFrame) -> float:
        self.probes += 1
        width, height = self.thumb_size
        thumb = frame.thumbnail_gray(width, height)
        score = 0.0 if self._prev_thumb is None else scene_score(self._prev_thumb, thumb)
        self._prev_thumb = thumb
        return score
