"""Dominant colour names and a brightness word for a small BGR picture.

Cheap (runs on a ~48 px picture) and honest: it names hue families by
thresholds on OpenCV's HSV (H 0..179, S and V 0..255), nothing learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Hue family boundaries in degrees (OpenCV stores H as degrees / 2).
_HUE_NAMES: tuple[tuple[float, str], ...] = (
    (15.0, "red"),
    (40.0, "orange"),
    (70.0, "yellow"),
    (160.0, "green"),
    (200.0, "cyan"),
    (260.0, "blue"),
    (290.0, "purple"),
    (345.0, "pink"),
    (360.0, "red"),
)
_DARK_V = 50  # below this value a pixel reads as black whatever its hue
_GRAY_S = 45  # below this saturation a pixel is achromatic (gray/white)
_WHITE_V = 200


@dataclass(frozen=True, slots=True)
class ColourSummary:
    """Dominant colours of a picture.

    colours: (name, fraction of pixels 0..1), most common first, at most 3.
    luma: mean luma 0..255.
    """

    colours: tuple[tuple[str, float], ...]
    luma: float

    @property
    def brightness_word(self) -> str:
        """"dark", "dim", "" (medium) or "bright"."""
        if self.luma < 50:
            return "dark"
        if self.luma < 95:
            return "dim"
        if self.luma > 175:
            return "bright"
        return ""

    def phrase(self) -> str:
        """E.g. "a bright, mostly green scene" or "a dim scene of gray, blue and white"."""
        if not self.colours:
            return "an empty picture"
        names = [name for name, _ in self.colours]
        first = self.colours[0][1]
        two = first + (self.colours[1][1] if len(self.colours) > 1 else 0.0)
        if first >= 0.5:
            body = f"mostly {names[0]} scene"
        elif len(names) > 1 and two >= 0.6:
            body = f"mostly {names[0]} and {names[1]} scene"
        else:
            body = "scene of " + _join(names)
        word = self.brightness_word
        if word:
            return f"a {word}, {body}" if body.startswith("mostly") else f"a {word} {body}"
        article = "an" if body[0] in "aeiou" else "a"
        return f"{article} {body}"


def _join(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def summarise_colours(bgr_small: np.ndarray, luma: float) -> ColourSummary:
    """Name the dominant colours of a small BGR uint8 picture (any size; keep it < ~5k pixels)."""
    hsv = cv2.cvtColor(bgr_small, cv2.COLOR_BGR2HSV).reshape(-1, 3)
    if hsv.size == 0:
        return ColourSummary((), luma)
    h = hsv[:, 0].astype(np.float32) * 2.0
    s = hsv[:, 1]
    v = hsv[:, 2]
    names = ["black", "white", "gray"] + [name for _, name in _HUE_NAMES]
    # Index into ``names``: achromatic classes first, then the hue families.
    hue_index = np.searchsorted(np.array([b for b, _ in _HUE_NAMES]), h, side="right")
    hue_index = np.minimum(hue_index, len(_HUE_NAMES) - 1) + 3
    index = np.where(v < _DARK_V, 0, np.where(s < _GRAY_S, np.where(v > _WHITE_V, 1, 2), hue_index))
    counts = np.bincount(index, minlength=len(names)).astype(np.float64)
    # The two "red" entries (both ends of the hue circle) count as one colour.
    merged: dict[str, float] = {}
    for name, count in zip(names, counts, strict=True):
        merged[name] = merged.get(name, 0.0) + count
    total = float(index.size)
    ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))
    top = tuple((name, count / total) for name, count in ranked[:3] if count / total >= 0.08)
    return ColourSummary(top, luma)
