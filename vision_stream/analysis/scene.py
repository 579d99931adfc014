"""Scene-cut evidence between two consecutive sampled frames.

Two cues, so neither a pan nor an exposure change reads as a cut:

* structure: zero-mean normalised cross-correlation of the small gray
  pictures (invariant to gain and offset), the better of unaligned and
  camera-aligned;
* colour: correlation of hue-saturation histograms (independent of
  brightness and of where things are).

A cut is a structural break that the colours confirm, or a structural break so
complete that nothing of the previous picture remains.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .frames import FrameFeatures
from .motion import Aligned

_STRUCTURE_BREAK = 0.5  # NCC below this: the pictures are structurally different
_COLOUR_BREAK = 0.6  # histogram correlation below this: the colours changed too
_TOTAL_BREAK = 0.2  # NCC below this alone is a cut
_FLAT_STD = 3.0  # luma std below which a picture is flat and NCC is meaningless
_FLAT_JUMP = 40.0  # luma units: between flat pictures, a jump this large is a cut


@dataclass(frozen=True, slots=True)
class CutEvidence:
    """structure: NCC -1..1 (1 = same picture); colour: histogram correlation -1..1."""

    structure: float
    colour: float
    is_cut: bool

    @property
    def confidence(self) -> float:
        """0..1, how far past the thresholds the evidence is."""
        return float(min(1.0, max(0.0, 1.0 - self.structure)) * (0.7 + 0.3 * (self.colour < _COLOUR_BREAK)))


def _ncc(a: np.ndarray, b: np.ndarray) -> float | None:
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if denominator <= 0.0:
        return None
    return float((a * b).sum()) / denominator


def cut_evidence(prev: FrameFeatures, cur: FrameFeatures, aligned: Aligned) -> CutEvidence:
    """Compare ``prev`` and ``cur``; ``aligned`` is prev warped by the camera estimate."""
    colour = float(cv2.compareHist(prev.hs_hist, cur.hs_hist, cv2.HISTCMP_CORREL))
    if prev.luma_std < _FLAT_STD or cur.luma_std < _FLAT_STD:
        jump = abs(prev.luma - cur.luma) >= _FLAT_JUMP and (prev.luma_std < _FLAT_STD) != (
            cur.luma_std < _FLAT_STD
        )
        return CutEvidence(0.0 if jump else 1.0, colour, jump)
    candidates = [_ncc(prev.gray, cur.gray)]
    if aligned.valid.mean() > 0.5:
        candidates.append(_ncc(aligned.prev[aligned.valid], aligned.cur[aligned.valid]))
    scores = [c for c in candidates if c is not None]
    structure = max(scores) if scores else 1.0
    is_cut = structure < _TOTAL_BREAK or (structure < _STRUCTURE_BREAK and colour < _COLOUR_BREAK)
    return CutEvidence(structure, colour, is_cut)
