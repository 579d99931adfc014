"""Per-frame features: the only thing kept of a frame once the next one arrives.

Everything the comparisons need is computed once per frame, at small sizes, so
a session holds a few tens of kilobytes per previous frame rather than pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .colour import ColourSummary, summarise_colours

WORK_SIDE = 192  # px, longest side of the gray picture used for motion, cuts and exposure
FEATURE_SIDE = 320  # px, longest side of the picture ORB keypoints are found on
COLOUR_STEP = 4  # take every 4th pixel of the work picture for colour naming (~48 px side)
_HS_BINS = (16, 16)  # hue x saturation bins of the cut histogram
_CLIP_HIGH = 250  # luma at or above which a pixel counts as blown out
_CLIP_LOW = 12  # luma at or below which a pixel counts as crushed to black


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """Small representations of one frame.

    gray: float32 (h, w) luma 0..255 at WORK_SIDE, lightly blurred to hide
        sensor/JPEG noise.
    points, descriptors: ORB keypoint positions (N, 2) in ``gray`` pixels and
        their binary descriptors (N, 32) uint8 (None when no keypoints).
    hs_hist: normalised hue-saturation histogram (brightness-independent).
    luma: mean luma 0..255; luma_std its standard deviation.
    clipped_high / clipped_low: fraction (0..1) of blown-out / crushed pixels.
    colours: dominant colour names.
    """

    gray: np.ndarray
    points: np.ndarray
    descriptors: np.ndarray | None
    hs_hist: np.ndarray
    luma: float
    luma_std: float
    clipped_high: float
    clipped_low: float
    colours: ColourSummary

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of ``gray`` in pixels."""
        return self.gray.shape[1], self.gray.shape[0]


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height))
    return max(8, round(width * scale)), max(8, round(height * scale))


class FeatureExtractor:
    """Turns a BGR frame into :class:`FrameFeatures`.

    Owns an ORB detector, which is not safe to share between threads: create
    one extractor per analyzer (per session).
    """

    def __init__(self, *, max_keypoints: int = 400) -> None:
        # Small patch/edge sizes: the picture is only 320 px wide, and the
        # default 31 px border would discard a fifth of it.
        self._orb = cv2.ORB_create(  # type: ignore[attr-defined]  # missing from cv2 stubs
            nfeatures=max_keypoints, scaleFactor=1.2, nlevels=4, edgeThreshold=15, patchSize=15,
            fastThreshold=12,
        )

    def extract(self, bgr: np.ndarray) -> FrameFeatures:
        """Features of a BGR uint8 (H, W, 3) frame (a gray (H, W) frame is accepted too)."""
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        height, width = bgr.shape[:2]
        feature_size = _fit(width, height, FEATURE_SIDE)
        work_size = _fit(width, height, WORK_SIDE)
        feature_bgr = cv2.resize(bgr, feature_size, interpolation=cv2.INTER_AREA)
        feature_gray = cv2.cvtColor(feature_bgr, cv2.COLOR_BGR2GRAY)
        work_bgr = cv2.resize(feature_bgr, work_size, interpolation=cv2.INTER_AREA)
        work_gray = cv2.cvtColor(work_bgr, cv2.COLOR_BGR2GRAY)

        keypoints, descriptors = self._orb.detectAndCompute(feature_gray, None)
        to_work = work_size[0] / feature_size[0]
        points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2) * to_work

        hsv = cv2.cvtColor(work_bgr, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, list(_HS_BINS), [0, 180, 0, 256])
        cv2.normalize(hist, hist, alpha=1.0, norm_type=cv2.NORM_L1)

        mean, std = cv2.meanStdDev(work_gray)
        luma = float(mean[0, 0])
        pixels = float(work_gray.size)
        gray = cv2.GaussianBlur(work_gray, (5, 5), 0).astype(np.float32)
        # Read-only: features outlive the frame and are shared by later comparisons.
        gray.flags.writeable = False
        return FrameFeatures(
            gray=gray,
            points=points,
            descriptors=descriptors,
            hs_hist=hist,
            luma=luma,
            luma_std=float(std[0, 0]),
            clipped_high=float(np.count_nonzero(work_gray >= _CLIP_HIGH)) / pixels,
            clipped_low=float(np.count_nonzero(work_gray <= _CLIP_LOW)) / pixels,
            colours=summarise_colours(work_bgr[::COLOUR_STEP, ::COLOUR_STEP], luma),
        )
