"""Named objects in one frame: people, faces and vehicles, as (label, confidence, box).

One job: a BGR frame (plus where it moved, from :mod:`.motion`) -> a list of
:class:`Found`. The models ship inside OpenCV's own wheel, so nothing is
downloaded at run time (bench/RESULTS.md, "Offline object naming", has the
comparison these choices come from):

* ``person`` (:meth:`ObjectDetector.people` only): OpenCV's HOG + linear SVM pedestrian detector
  (``HOGDescriptor_getDefaultPeopleDetector``, Dalal-Triggs, 64x128 window);
  it finds standing, mostly whole people.
* ``face``: the Haar cascade ``haarcascade_frontalface_default.xml`` from
  ``cv2.data``; it finds frontal faces, which also names people in close-ups
  where HOG sees no whole body. A face also counts as a ``person``.
* ``vehicle``: no vehicle model ships with OpenCV (or any PyPI wheel we
  measured), so this is a heuristic: a compact moving region, after camera
  compensation, in a frame where neither detector found a person. Its
  confidence is capped at :data:`VEHICLE_MAX_CONFIDENCE` to say so.

OpenCV 5 removed both the HOG detector and ``cv2.data``; there the detector
finds nothing and :attr:`ObjectDetector.available` says which parts are missing.

Cost: both detectors run on a copy at most :data:`DETECT_SIDE` px wide
(measured 15.6 ms mean, 28.4 max per frame on one core, bench.detector). Not thread-safe
(a ``CascadeClassifier`` keeps scratch buffers): one detector per analyzer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..events import Region

DETECT_SIDE = 320  # px: longest side the detectors see (cost grows with its square)
FACE_MIN = 18  # px at DETECT_SIDE: smaller faces are mostly false alarms
PERSON_MIN_SCORE = 0.5  # HOG SVM margin below which a window is not reported
VEHICLE_MIN_AREA = 0.01  # fraction of the frame a moving region needs to be named a vehicle
VEHICLE_MAX_AREA = 0.45
VEHICLE_MAX_CONFIDENCE = 0.6  # a guess from motion and shape, never a certainty
LABELS = ("person", "face", "vehicle")


@dataclass(frozen=True, slots=True)
class Found:
    """One named object: label (see :data:`LABELS`), confidence 0..1, box normalised to the frame."""

    label: str
    confidence: float
    box: Region


def _fit(bgr: np.ndarray) -> tuple[np.ndarray, float]:
    """The frame at most DETECT_SIDE px on its longest side, and the scale applied."""
    height, width = bgr.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(width, height))
    if scale >= 1.0:
        return bgr, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), scale


def _box(x: float, y: float, w: float, h: float, width: int, height: int) -> Region:
    x0, y0 = max(0.0, x / width), max(0.0, y / height)
    x1, y1 = min(1.0, (x + w) / width), min(1.0, (y + h) / height)
    return Region(round(x0, 4), round(y0, 4), round(x1 - x0, 4), round(y1 - y0, 4))


def overlap(a: Region, b: Region) -> float:
    """Intersection over the smaller box (0..1): how much one box lies inside the other."""
    ix = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    smaller = min(a.width * a.height, b.width * b.height)
    return ix * iy / smaller if smaller > 0 else 0.0


class ObjectDetector:
    """Finds people, faces and (heuristically) vehicles in BGR frames."""

    def __init__(self) -> None:
        self._hog: cv2.HOGDescriptor | None = None
        self._faces: cv2.CascadeClassifier | None = None
        if hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            hog = cv2.HOGDescriptor()
            hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
            self._hog = hog
        data = getattr(getattr(cv2, "data", None), "haarcascades", "")
        path = os.path.join(data, "haarcascade_frontalface_default.xml") if data else ""
        if path and os.path.exists(path) and hasattr(cv2, "CascadeClassifier"):
            faces = cv2.CascadeClassifier(path)
            self._faces = None if faces.empty() else faces

    @property
    def available(self) -> tuple[str, ...]:
        """Labels this OpenCV build can name (vehicle always: it needs motion only)."""
        names = []
        if self._hog is not None or self._faces is not None:
            names.append("person")
        if self._faces is not None:
            names.append("face")
        return (*names, "vehicle")

    def detect(self, bgr: np.ndarray, moving: Sequence[Region] = ()) -> list[Found]:
        """Objects in one BGR uint8 frame; ``moving``: regions that moved since the last frame."""
        small, _scale = _fit(bgr)
        height, width = small.shape[:2]
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        # HOG (self._people) is not run per frame: on the measured clips it named no one at this
        # size (bench/RESULTS.md) and costs ~5 ms; it stays for whole-body callers via people().
        found = self._face_boxes(gray, width, height)
        if not found:
            found = self._vehicles(moving)
        return found

    def people(self, bgr: np.ndarray) -> list[Found]:
        """Standing, whole people only (HOG), at DETECT_SIDE: not part of :meth:`detect`."""
        small, _scale = _fit(bgr)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return self._people(gray, small.shape[1], small.shape[0])

    def _people(self, gray: np.ndarray, width: int, height: int) -> list[Found]:
        if self._hog is None or width < 64 or height < 128:
            return []
        # winStride (8, 8) and scale 1.1: a third of the default 1.05's pyramid levels.
        rects, weights = self._hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=1.1)
        out: list[Found] = []
        for (x, y, w, h), weight in zip(rects, np.ravel(weights), strict=True):
            score = float(weight)
            if score < PERSON_MIN_SCORE:
                continue
            confidence = round(min(0.95, 0.4 + score / 4), 3)
            out.append(Found("person", confidence, _box(x, y, w, h, width, height)))
        return _suppress(out)

    def _face_boxes(self, gray: np.ndarray, width: int, height: int) -> list[Found]:
        if self._faces is None:
            return []
        equalised = cv2.equalizeHist(gray)
        # outputRejectLevels: the last stage's weight per face, a usable confidence.
        rects, _levels, weights = self._faces.detectMultiScale3(
            equalised, scaleFactor=1.2, minNeighbors=4, minSize=(FACE_MIN, FACE_MIN), outputRejectLevels=True)
        out: list[Found] = []
        for (x, y, w, h), weight in zip(rects, np.ravel(weights), strict=True):
            confidence = round(min(0.95, max(0.3, 0.5 + float(weight) / 10)), 3)
            face = _box(x, y, w, h, width, height)
            out.append(Found("face", confidence, face))
            # The person the face belongs to: about 3 face widths wide, from the face down.
            body = _box(x - w, y - h * 0.25, 3 * w, 5 * h, width, height)
            out.append(Found("person", round(confidence * 0.9, 3), body))
        return _suppress(out)

    @staticmethod
    def _vehicles(moving: Sequence[Region]) -> list[Found]:
        out: list[Found] = []
        for region in moving:
            area = region.width * region.height
            if not VEHICLE_MIN_AREA <= area <= VEHICLE_MAX_AREA:
                continue
            aspect = region.width / region.height if region.height > 0 else 0.0
            if not 0.2 <= aspect <= 5.0:
                continue
            confidence = round(min(VEHICLE_MAX_CONFIDENCE, 0.3 + area * 3), 3)
            out.append(Found("vehicle", confidence, region))
        return _suppress(out)


def _suppress(found: list[Found], limit: float = 0.6) -> list[Found]:
    """Per label, keep the most confident of boxes that mostly overlap (greedy NMS)."""
    kept: list[Found] = []
    for item in sorted(found, key=lambda f: -f.confidence):
        if all(k.label != item.label or overlap(k.box, item.box) < limit for k in kept):
            kept.append(item)
    return kept
