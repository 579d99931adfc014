"""Scene-cut evidence between two consecutive sampled frames.

Two cues, so neither a pan nor an exposure change reads as a cut:

* structure: zero-mean normalised cross-correlation of the small gray
  pictures (invariant to gain and offset), the better of unaligned and
  camera-aligned;
* colour: correlation of hue-saturation histograms (independent of
  brightness and of where things are);
* extent: the share of tiles (a 6x4 grid) whose content changed, so that one
  object entering a plain scene (which can decorrelate the whole picture when
  the background has no texture) is not a cut.

A cut is a structural break across nearly the whole frame, or across most of
it with the colours confirming.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .frames import FrameFeatures
from .motion import Aligned

_STRUCTURE_BREAK = 0.5  # NCC below this: the pictures are structurally different
_COLOUR_BREAK = 0.5  # histogram correlation below this: the colours changed too
_SAME_COLOURS = 0.99  # histogram correlation at or above this: the same shot, whatever the structure says
_TILES = (4, 6)  # rows, columns of the change-extent grid
_TILE_MIN_DIFF = 6.0  # luma units: a tile's mean difference (own mean removed) below this is unchanged
_TILE_MEAN_SHIFT = 25.0  # luma units: a tile mean moving this much more than the frame's is changed
_TILE_REL_DIFF = 0.6  # ... or below this share of the tile's contrast (std)
_ALL_TILES = 0.8  # share of changed tiles that, with a structural break, is a cut
_MOST_TILES = 0.65  # share that is a cut when the colours changed too
_FLAT_STD = 3.0  # luma std below which a picture is flat and NCC is meaningless
_FLAT_JUMP = 40.0  # luma units: between flat pictures, a jump this large is a cut


@dataclass(frozen=True, slots=True)
class CutEvidence:
    """structure: NCC -1..1 (1 = same picture); colour: histogram correlation -1..1;
    extent: share of tiles that changed, 0..1."""

    structure: float
    colour: float
    extent: float
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


def changed_extent(aligned: Aligned) -> float:
    """Share (0..1) of grid tiles whose content changed between the aligned pictures.

    Each tile is compared after removing its own mean, so an exposure change
    (which shifts every tile alike) changes no tile; a tile whose mean moved
    differently from the frame's typical shift counts as changed too, so cuts
    between plain pictures are still seen.
    """
    height, width = aligned.cur.shape
    rows, cols = _TILES
    shifts: list[float] = []
    textures: list[bool] = []
    for r in range(rows):
        for c in range(cols):
            ys = slice(r * height // rows, (r + 1) * height // rows)
            xs = slice(c * width // cols, (c + 1) * width // cols)
            valid = aligned.valid[ys, xs]
            if valid.mean() < 0.5:
                continue  # mostly outside the warped previous frame: no evidence
            prev = aligned.prev[ys, xs][valid]
            cur = aligned.cur[ys, xs][valid]
            prev_mean, cur_mean = float(prev.mean()), float(cur.mean())
            diff = float(np.abs((prev - prev_mean) - (cur - cur_mean)).mean())
            contrast = max(float(prev.std()), float(cur.std()))
            shifts.append(cur_mean - prev_mean)
            textures.append(diff > max(_TILE_MIN_DIFF, _TILE_REL_DIFF * contrast))
    if not shifts:
        return 0.0
    typical = float(np.median(shifts))
    changed = sum(
        1 for shift, textured in zip(shifts, textures, strict=True)
        if textured or abs(shift - typical) > _TILE_MEAN_SHIFT
    )
    return changed / len(shifts)


def cut_evidence(prev: FrameFeatures, cur: FrameFeatures, aligned: Aligned) -> CutEvidence:
    """Compare ``prev`` and ``cur``; ``aligned`` is prev warped by the camera estimate."""
    colour = float(cv2.compareHist(prev.hs_hist, cur.hs_hist, cv2.HISTCMP_CORREL))
    if prev.luma_std < _FLAT_STD or cur.luma_std < _FLAT_STD:
        jump = abs(prev.luma - cur.luma) >= _FLAT_JUMP and (prev.luma_std < _FLAT_STD) != (
            cur.luma_std < _FLAT_STD
        )
        return CutEvidence(0.0 if jump else 1.0, colour, 1.0 if jump else 0.0, jump)
    candidates = [_ncc(prev.gray, cur.gray)]
    if aligned.valid.mean() > 0.5:
        candidates.append(_ncc(aligned.prev[aligned.valid], aligned.cur[aligned.valid]))
    scores = [c for c in candidates if c is not None]
    structure = max(scores) if scores else 1.0
    if structure >= _STRUCTURE_BREAK:
        return CutEvidence(structure, colour, 0.0, False)
    extent = changed_extent(aligned)
    # Identical colour statistics veto a cut: fine texture under a camera move
    # the estimator missed decorrelates every tile (seen on our own sample's
    # slow pan at 1 fps), while a cut to another shot shifts the histogram.
    is_cut = colour < _SAME_COLOURS and (
        extent >= _ALL_TILES or (extent >= _MOST_TILES and colour < _COLOUR_BREAK)
    )
    return CutEvidence(structure, colour, extent, is_cut)
