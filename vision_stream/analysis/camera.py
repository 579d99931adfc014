"""Global (camera) motion between two frames: pan, tilt and zoom.

Primary estimate: ORB keypoints matched between the frames and a RANSAC
similarity transform (``estimateAffinePartial2D``: shift, rotation, uniform
scale). Matching descriptors copes with the large shifts seen at ~1 fps, where
optical flow would lose track. When a frame has too little texture for
keypoints, phase correlation gives the translation.

A moving object must not be mistaken for the camera: the transform is only
accepted as camera motion when the evidence for it is spread across the frame
(inlier keypoints, or textured pixels, covering a large part of both axes).
Otherwise the camera is taken as still and the change is left to
:mod:`.motion`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .frames import FrameFeatures
from .motion import align

_MIN_MATCHES = 15
_MAX_HAMMING = 64  # of 256 bits: looser matches are mostly wrong
_RANSAC_PX = 2.0  # reprojection tolerance, work-picture pixels
_MIN_INLIER_RATIO = 0.3
_MIN_SPREAD = 0.35  # inliers must span this fraction of width and height
_MIN_PHASE_RESPONSE = 0.25
_MIN_RESIDUAL_GAIN = 0.6  # a phase shift must cut the mean difference to this share of the unshifted one
_TEXTURE_GRADIENT = 24.0  # Sobel magnitude (work picture) that counts as texture
_MIN_TEXTURE_FRACTION = 0.05

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CameraMotion:
    """How the picture content moved from the previous frame to this one.

    dx, dy: motion of the frame centre as a fraction of width / height
        (+dx: content moved right, i.e. the camera panned left; +dy: content
        moved down, i.e. the camera tilted up).
    scale: content scale factor (> 1: zooming in / moving closer).
    matrix: 2x3 transform mapping previous-frame work pixels to this frame's.
    method: "features", "phase" or "none" (camera taken as still).
    confidence: 0..1, how well the evidence supports the estimate.
    """

    dx: float
    dy: float
    scale: float
    matrix: np.ndarray
    method: str
    confidence: float

    @property
    def is_still(self) -> bool:
        return self.method == "none"


STILL = CameraMotion(0.0, 0.0, 1.0, IDENTITY, "none", 0.0)


def estimate_camera_motion(prev: FrameFeatures, cur: FrameFeatures) -> CameraMotion:
    """Estimate the global motion from ``prev`` to ``cur`` (same work size)."""
    if prev.size != cur.size:
        return STILL
    found = _from_keypoints(prev, cur)
    if found is None:
        found = _from_phase(prev, cur)
    return found if found is not None else STILL


def _describe(matrix: np.ndarray, size: tuple[int, int], method: str, confidence: float) -> CameraMotion:
    width, height = size
    centre = np.array([width / 2.0, height / 2.0])
    moved = matrix[:, :2] @ centre + matrix[:, 2]
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    return CameraMotion(
        dx=float((moved[0] - centre[0]) / width),
        dy=float((moved[1] - centre[1]) / height),
        scale=float(scale),
        matrix=matrix,
        method=method,
        confidence=float(min(1.0, max(0.0, confidence))),
    )


def _from_keypoints(prev: FrameFeatures, cur: FrameFeatures) -> CameraMotion | None:
    if prev.descriptors is None or cur.descriptors is None:
        return None
    if len(prev.descriptors) < _MIN_MATCHES or len(cur.descriptors) < _MIN_MATCHES:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    matches = [m for m in matcher.match(prev.descriptors, cur.descriptors) if m.distance <= _MAX_HAMMING]
    if len(matches) < _MIN_MATCHES:
        return None
    # Sort for a stable order: RANSAC's (fixed-seed) sampling then sees the same input every run.
    matches.sort(key=lambda m: (m.queryIdx, m.trainIdx))
    src = prev.points[[m.queryIdx for m in matches]]
    dst = cur.points[[m.trainIdx for m in matches]]
    matrix, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_PX, maxIters=2000, confidence=0.995,
    )
    if matrix is None or inliers is None:
        return None
    mask = inliers.ravel().astype(bool)
    count = int(mask.sum())
    if count < _MIN_MATCHES or count < _MIN_INLIER_RATIO * len(matches):
        return None
    width, height = cur.size
    used = dst[mask]
    spread_x = float(np.ptp(used[:, 0])) / width
    spread_y = float(np.ptp(used[:, 1])) / height
    if spread_x < _MIN_SPREAD or spread_y < _MIN_SPREAD:
        # The consistent motion is local (an object): the camera is taken as still.
        return STILL
    confidence = count / len(matches) * min(1.0, count / 40.0)
    return _describe(matrix.astype(np.float64), cur.size, "features", confidence)


def _texture_spread(gray: np.ndarray) -> tuple[float, float, float]:
    """Fraction of textured pixels and their spread (5th-95th percentile) along x and y."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    textured = cv2.magnitude(gx, gy) >= _TEXTURE_GRADIENT
    count = int(np.count_nonzero(textured))
    if count == 0:
        return 0.0, 0.0, 0.0
    ys, xs = np.nonzero(textured)
    height, width = gray.shape
    spread_x = float(np.percentile(xs, 95) - np.percentile(xs, 5)) / width
    spread_y = float(np.percentile(ys, 95) - np.percentile(ys, 5)) / height
    return count / gray.size, spread_x, spread_y


def _from_phase(prev: FrameFeatures, cur: FrameFeatures) -> CameraMotion | None:
    fraction, spread_x, spread_y = _texture_spread(cur.gray)
    if fraction < _MIN_TEXTURE_FRACTION or spread_x < 0.5 or spread_y < 0.5:
        return None
    window = cv2.createHanningWindow((cur.size[0], cur.size[1]), cv2.CV_32F)
    # Copies: OpenCV 5's phaseCorrelate applies the window to its inputs in place.
    (shift_x, shift_y), response = cv2.phaseCorrelate(prev.gray.copy(), cur.gray.copy(), window)
    if response < _MIN_PHASE_RESPONSE:
        return None
    matrix = np.array([[1.0, 0.0, shift_x], [0.0, 1.0, shift_y]], dtype=np.float64)
    # Phase correlation locks onto whatever structure there is, a single object
    # included: only call it camera motion if it explains the frame difference.
    if _residual(prev.gray, cur.gray, matrix) > _MIN_RESIDUAL_GAIN * _residual(prev.gray, cur.gray, IDENTITY):
        return None
    return _describe(matrix, cur.size, "phase", response)


def _residual(prev: np.ndarray, cur: np.ndarray, matrix: np.ndarray) -> float:
    """Mean absolute difference (luma units) of ``cur`` and ``prev`` warped by ``matrix``, where both exist."""
    aligned = align(prev, cur, matrix, moved=matrix is not IDENTITY)
    if not aligned.valid.any():
        return float("inf")
    return float(np.abs(aligned.prev[aligned.valid] - aligned.cur[aligned.valid]).mean())
