"""Motion left after compensating the camera: how much of the frame moved, and where.

The previous frame is warped onto the current one with the camera transform
and matched in gain and offset (so an exposure change is not motion), then
differenced. Changed pixels are cleaned with morphology and grouped with
``connectedComponentsWithStats``.

At ~1 fps a moving object shows up twice in a difference image (where it was
and where it is); its region covers both, which is also where the activity was.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..events import Region

_MIN_THRESHOLD = 22.0  # luma units: smaller differences are noise/compression at 1 fps
_NOISE_FACTOR = 4.0  # threshold also >= this many times the median difference
_MIN_REGION = 0.001  # regions smaller than this fraction of the frame are dropped
MAX_REGIONS = 8
_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_CLOSE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))


@dataclass(frozen=True, slots=True)
class Aligned:
    """The previous frame warped onto the current one.

    prev: float32 luma, gain/offset matched to ``cur``; valid: bool mask of
    pixels both frames cover.
    """

    prev: np.ndarray
    cur: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True, slots=True)
class MotionResult:
    """fraction: moving share of the covered frame (0..1); regions: largest first (<= 8)."""

    fraction: float
    regions: tuple[Region, ...]
    areas: tuple[float, ...]  # fraction of the frame per region, same order

    def union(self) -> Region | None:
        """Bounding box of all regions (None when nothing moved)."""
        if not self.regions:
            return None
        x0 = min(r.x for r in self.regions)
        y0 = min(r.y for r in self.regions)
        x1 = max(r.x + r.width for r in self.regions)
        y1 = max(r.y + r.height for r in self.regions)
        return Region(x0, y0, x1 - x0, y1 - y0)


NO_MOTION = MotionResult(0.0, (), ())


def align(prev: np.ndarray, cur: np.ndarray, matrix: np.ndarray, *, moved: bool) -> Aligned:
    """Warp ``prev`` onto ``cur`` with ``matrix`` (when ``moved``) and match gain/offset."""
    height, width = cur.shape
    if moved:
        warped = cv2.warpAffine(prev, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        cover = cv2.warpAffine(np.ones_like(prev, dtype=np.uint8), matrix, (width, height),
                               flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        # Drop a margin: interpolation smears the edge of the warped picture.
        valid = cv2.erode(cover, np.ones((5, 5), np.uint8)).astype(bool)
    else:
        warped = prev
        valid = np.ones(cur.shape, dtype=bool)
    if not valid.any():
        return Aligned(warped, cur, valid)
    p = warped[valid]
    c = cur[valid]
    p_mean, p_std = float(p.mean()), float(p.std())
    c_mean, c_std = float(c.mean()), float(c.std())
    gain = c_std / p_std if p_std > 1.0 and c_std > 1.0 else 1.0
    # Cap the gain: a near-flat frame would otherwise amplify noise into "motion".
    gain = min(max(gain, 0.5), 2.0)
    matched = (warped - p_mean) * gain + c_mean
    return Aligned(matched.astype(np.float32), cur, valid)


def find_motion(aligned: Aligned) -> MotionResult:
    """Changed regions between the aligned previous frame and the current one."""
    valid = aligned.valid
    covered = int(np.count_nonzero(valid))
    if covered == 0:
        return NO_MOTION
    diff = cv2.absdiff(aligned.prev, aligned.cur)
    diff[~valid] = 0.0
    noise = float(np.median(diff[valid]))
    threshold = max(_MIN_THRESHOLD, _NOISE_FACTOR * noise)
    raw_mask = (diff > threshold).astype(np.uint8)
    opened = cv2.morphologyEx(raw_mask, cv2.MORPH_OPEN, _OPEN)
    mask = cv2.morphologyEx(opened, cv2.MORPH_CLOSE, _CLOSE)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    height, width = mask.shape
    total = float(height * width)
    found: list[tuple[float, Region]] = []
    moving = 0
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if area < _MIN_REGION * total:
            continue
        moving += area
        found.append((area / total, Region(x / width, y / height, w / width, h / height)))
    # Largest first; ties broken by position so the order is stable.
    found.sort(key=lambda item: (-item[0], item[1].y, item[1].x))
    found = found[:MAX_REGIONS]
    return MotionResult(
        fraction=moving / covered,
        regions=tuple(r for _, r in found),
        areas=tuple(a for a, _ in found),
    )
