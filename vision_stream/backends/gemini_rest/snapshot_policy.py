"""The snapshot policy for streams on the REST path: which frames, and what context, per request.

REST has no session memory, so every request carries (issue 4, "Snapshot
policy"): up to K recent frames, the most informative ones (most different
from what was analysed last, the newest always included), within a token
budget; and a rolling summary of recent commentary, so the narrative goes on
across a switch from live. Pure code (no I/O); thumbnails are computed by the
caller off the event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

THUMB_SIZE = (32, 18)  # (width, height) pixels of the change-measuring thumbnail
# Image tokens per frame (LIVE_API.md §1 "Setup": LOW = 64, MEDIUM = 256; HIGH is at least MEDIUM).
TOKENS_PER_IMAGE = {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256, "MEDIA_RESOLUTION_HIGH": 256}


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """A small float32 grayscale picture (0..1) of a BGR frame, for change measures."""
    import cv2

    gray = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
    small = cv2.resize(gray, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails, 0..1."""
    return float(np.mean(np.abs(a - b)))


def frames_within_budget(max_frames: int, token_budget: int, media_resolution: str) -> int:
    """K: how many frames one request may carry (at least 1)."""
    per_image = TOKENS_PER_IMAGE.get(media_resolution, 256)
    return max(1, min(max_frames, token_budget // per_image))


def pick_frames(thumbs: Sequence[np.ndarray], reference: np.ndarray | None, k: int) -> list[int]:
    """Indices (ascending, i.e. in time order) of up to ``k`` frames to send.

    ``thumbs`` are candidates oldest first. The newest is always taken (it is
    "now"); the rest greedily maximise the smallest difference to everything
    already chosen and to ``reference`` (the last frame analysed), so a scene
    cut or a burst of motion is picked over near-duplicates.
    """
    if not thumbs or k < 1:
        return []
    newest = len(thumbs) - 1
    chosen = [newest]
    anchors = [thumbs[newest]] + ([reference] if reference is not None else [])
    remaining = set(range(newest))
    while len(chosen) < k and remaining:
        best, best_score = -1, -1.0
        for index in sorted(remaining):
            score = min(difference(thumbs[index], anchor) for anchor in anchors)
            if score > best_score:
                best, best_score = index, score
        if best_score <= 0.0:
            break  # only exact duplicates left: they add tokens, not information
        chosen.append(best)
        anchors.append(thumbs[best])
        remaining.discard(best)
    return sorted(chosen)


@dataclass(frozen=True, slots=True)
class SummaryLimits:
    """Bounds of the rolling commentary summary: entries kept and characters sent."""

    entries: int = 6
    chars: int = 1200


class RollingSummary:
    """Recent final commentary (any backend's), oldest first, bounded."""

    def __init__(self, limits: SummaryLimits | None = None) -> None:
        self.limits = limits or SummaryLimits()
        self._items: deque[tuple[float | None, str]] = deque(maxlen=self.limits.entries)

    def add(self, text: str, media_time: float | None = None) -> None:
        text = " ".join(text.split())
        if text:
            self._items.append((media_time, text))

    def __len__(self) -> int:
        return len(self._items)

    def texts(self) -> list[str]:
        return [text for _, text in self._items]

    def render(self) -> str:
        """``- [12.0 s] text`` lines, newest kept when over the character bound."""
        lines: list[str] = []
        total = 0
        for when, text in reversed(self._items):
            line = f"- [{when:.1f} s] {text}" if when is not None else f"- {text}"
            if total + len(line) > self.limits.chars:
                if not lines:
                    lines.append(line[: self.limits.chars - 1] + "…")
                break
            lines.append(line)
            total += len(line) + 1
        return "\n".join(reversed(lines))
