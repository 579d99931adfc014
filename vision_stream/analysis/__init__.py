"""Offline signal analysis: what the pixels and samples show, without a model.

Small modules with one job each, all synchronous and deterministic (no clock,
no randomness), so the same input always gives the same findings:

* :mod:`.frames`  - per-frame features (small gray pictures, histograms, ORB keypoints)
* :mod:`.colour`  - dominant colour names and brightness words
* :mod:`.camera`  - global camera motion (pan / tilt / zoom) between two frames
* :mod:`.motion`  - motion left after compensating the camera: amount and regions
* :mod:`.scene`   - scene-cut score (structure + colour histogram)
* :mod:`.video`   - the per-session video state machine turning signals into onsets
* :mod:`.audio`   - loudness (dBFS) and a VAD-like activity detector
* :mod:`.summary` - rolling statistics phrased as commentary
* :mod:`.describe` - ``describe_jpegs``: the whole chain over a list of JPEGs
"""

from __future__ import annotations

from .audio import AudioActivityDetector, AudioReport
from .describe import describe_jpegs
from .summary import ActivityLog
from .video import FrameReport, VideoAnalyzer

__all__ = [
    "ActivityLog",
    "AudioActivityDetector",
    "AudioReport",
    "FrameReport",
    "VideoAnalyzer",
    "describe_jpegs",
]
