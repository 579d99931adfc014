"""The per-session video state machine: signals between consecutive frames -> onsets.

:class:`VideoAnalyzer` keeps only the previous frame's features and a few
state flags, compares each new frame with the previous one and reports a
:class:`FrameReport` with the raw signals plus :class:`Detection` payloads
for signals that *start* at this frame:

============== =================================================================
label          fires when
============== =================================================================
scene_cut      structure and colour break between consecutive frames
motion         moving area (after camera compensation) rises past 0.5 % of the
               frame while no motion was active (hangover of one quiet frame)
camera_pan     the frame centre moves >= 3 % of the width between frames in a new
               direction ("left"/"right" is where the *camera* turns)
camera_tilt    same vertically ("up"/"down")
zoom           content scale changes >= 3 % between frames in a new direction
brightness_change  mean luma steps >= 8/255, or drifts >= 16/255 over consecutive
               same-sign steps, in a new direction; not across a cut
overexposed    >= 30 % of pixels blown out and a bright picture (entering the state)
underexposed   >= 50 % of pixels crushed and a dark picture (entering the state)
person, face   a named object (:mod:`.objects`) seen in this frame but not in the
               previous one; the detection carries its confidence and box
============== =================================================================

A ``vehicle`` (a guess from motion and shape, see :mod:`.objects`) gets no
detection of its own: a moving block is all it needs, so it would double every
motion onset; it is in :attr:`FrameReport.objects` (box and confidence), in the
motion onset's wording ("... likely a vehicle") and in the commentary.
============== =================================================================

After a cut, motion, camera and brightness states restart from the new shot.
Deterministic: no clock, no randomness; same frames in, same reports out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..events import Detection, Region
from .camera import STILL, CameraMotion, estimate_camera_motion
from .colour import ColourSummary
from .frames import FeatureExtractor, FrameFeatures
from .motion import NO_MOTION, MotionResult, align, find_motion
from .objects import Found, ObjectDetector
from .scene import CutEvidence, cut_evidence

BACKEND = "local"

MOTION_ON = 0.005  # moving fraction of the frame that starts motion
MOTION_OFF = 0.002  # below this the frame counts as quiet
MOTION_HANGOVER = 1  # quiet frames tolerated before motion counts as ended
CAMERA_SHIFT = 0.03  # fraction of width/height per frame pair that counts as a pan/tilt
CAMERA_ZOOM = 0.03  # relative scale change per frame pair that counts as a zoom
LUMA_STEP = 8.0  # luma units (0..255) in one frame pair: a brightness change at once
LUMA_DRIFT = 16.0  # luma units accumulated over same-sign steps: a gradual change
LUMA_STEADY = 2.0  # steps smaller than this end a brightness trend
OVER_CLIPPED, OVER_LUMA = 0.30, 160.0
UNDER_CLIPPED, UNDER_LUMA = 0.50, 45.0
ONSET_LABELS = frozenset({"person", "face"})  # named objects that start a detection of their own


def place_name(region: Region) -> str:
    """Where a region's centre lies, in words: "the lower-left", "the centre", ..."""
    cx = region.x + region.width / 2
    cy = region.y + region.height / 2
    col = 0 if cx < 1 / 3 else (1 if cx < 2 / 3 else 2)
    row = 0 if cy < 1 / 3 else (1 if cy < 2 / 3 else 2)
    return PLACE_NAMES[row][col]


PLACE_NAMES = (
    ("the upper-left", "the top", "the upper-right"),
    ("the left", "the centre", "the right"),
    ("the lower-left", "the bottom", "the lower-right"),
)


@dataclass(frozen=True, slots=True)
class FrameReport:
    """Signals of one frame relative to the previous one, plus the onsets they start.

    media_time: seconds; interval: seconds since the previous frame (0 for the first).
    first: no previous frame to compare with (session start).
    """

    media_time: float
    interval: float
    first: bool
    luma: float
    colours: ColourSummary
    cut: CutEvidence | None = None
    camera: CameraMotion = STILL
    motion: MotionResult = NO_MOTION
    exposure: str = ""  # "", "overexposed" or "underexposed" (the state at this frame)
    brightness: str = ""  # "", "brighter" or "darker": a trend running at this frame
    objects: tuple[Found, ...] = ()  # named objects in this frame (see .objects)
    detections: tuple[Detection, ...] = field(default=())

    @property
    def is_cut(self) -> bool:
        return self.cut is not None and self.cut.is_cut


def _pct(fraction: float) -> str:
    value = fraction * 100
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


class VideoAnalyzer:
    """Stateful comparison of consecutive frames of one session.

    Memory: the previous frame's :class:`FrameFeatures` (tens of kB) and a few
    scalars. Not thread-safe; call :meth:`process` from one thread at a time,
    in media-time order.
    """

    def __init__(self) -> None:
        self._extractor = FeatureExtractor()
        self._prev: FrameFeatures | None = None
        self._prev_time = 0.0
        self._moving = False
        self._quiet_frames = 0
        self._pan = ""
        self._tilt = ""
        self._zoom = ""
        self._trend = 0  # +1 brighter, -1 darker, 0 steady
        self._drift = 0.0
        self._exposure = ""
        self._objects = ObjectDetector()
        self._seen: frozenset[str] = frozenset()  # labels named in the previous frame

    def reset(self) -> None:
        """Forget the previous frame (e.g. after a gap in the input)."""
        self._prev = None
        self._restart_shot()

    def _restart_shot(self) -> None:
        self._moving = False
        self._quiet_frames = 0
        self._pan = self._tilt = self._zoom = ""
        self._trend = 0
        self._drift = 0.0
        self._seen = frozenset()

    def process(self, bgr: np.ndarray, media_time: float) -> FrameReport:
        """Analyse one BGR uint8 frame at ``media_time`` seconds."""
        features = self._extractor.extract(bgr)
        prev, prev_time = self._prev, self._prev_time
        self._prev, self._prev_time = features, media_time
        detections: list[Detection] = []
        exposure = self._exposure_state(features, detections)
        if prev is None or prev.size != features.size:
            self._restart_shot()
            objects = self._name_objects(bgr, NO_MOTION, detections)
            return FrameReport(media_time, 0.0, True, features.luma, features.colours,
                               exposure=exposure, objects=objects, detections=tuple(detections))
        interval = max(0.0, media_time - prev_time)

        camera = estimate_camera_motion(prev, features)
        aligned = align(prev.gray, features.gray, camera.matrix, moved=not camera.is_still)
        cut = cut_evidence(prev, features, aligned)
        if cut.is_cut:
            self._restart_shot()
            detections.insert(0, Detection(
                label="scene_cut",
                description=f"scene cut: now {features.colours.phrase()}",
                severity="info",
                confidence=round(cut.confidence, 3),
                backend=BACKEND,
            ))
            objects = self._name_objects(bgr, NO_MOTION, detections)
            return FrameReport(media_time, interval, False, features.luma, features.colours, cut=cut,
                               exposure=exposure, objects=objects, detections=tuple(detections))

        motion = find_motion(aligned)
        self._camera_onsets(camera, interval, detections)
        named: list[Detection] = []
        objects = self._name_objects(bgr, motion, named)
        self._motion_onset(motion, detections, vehicle=any(f.label == "vehicle" for f in objects))
        brightness = self._brightness_onset(features.luma - prev.luma, features.luma, detections)
        detections.extend(named)
        return FrameReport(media_time, interval, False, features.luma, features.colours, cut=cut,
                           camera=camera, motion=motion, exposure=exposure, brightness=brightness,
                           objects=objects, detections=tuple(detections))

    # -- onsets -----------------------------------------------------------------

    def _name_objects(self, bgr: np.ndarray, motion: MotionResult, out: list[Detection]) -> tuple[Found, ...]:
        """Named objects in the frame; a detection for each label not named in the previous frame."""
        found = tuple(self._objects.detect(bgr, motion.regions))
        labels = frozenset(f.label for f in found)
        for label in sorted((labels - self._seen) & ONSET_LABELS):
            best = max((f for f in found if f.label == label), key=lambda f: f.confidence)
            count = sum(1 for f in found if f.label == label)
            noun = f"{count} {label}s" if count > 1 else f"a {label}"
            out.append(Detection(
                label=label,
                description=f"{noun} in {place_name(best.box)}",
                severity="info",
                confidence=best.confidence,
                region=best.box,
                backend=BACKEND,
            ))
        self._seen = labels
        return found

    def _motion_onset(self, motion: MotionResult, out: list[Detection], *, vehicle: bool = False) -> None:
        if motion.fraction >= MOTION_ON:
            self._quiet_frames = 0
            if not self._moving:
                self._moving = True
                region = motion.union()
                # Name the place of the box the detection carries (the union of all regions),
                # not of its largest part: the word and the box must agree.
                where = place_name(region) if region is not None else "the frame"
                count = len(motion.regions)
                out.append(Detection(
                    label="motion",
                    description=(f"motion started in {where} ({_pct(motion.fraction)} of the frame, "
                                 f"{count} region{'s' if count != 1 else ''})"
                                 + (", likely a vehicle" if vehicle else "")),
                    severity="medium" if motion.fraction >= 0.25 else "low",
                    confidence=round(min(1.0, 0.5 + motion.fraction / (4 * MOTION_ON)), 3),
                    region=region,
                    backend=BACKEND,
                ))
        elif motion.fraction < MOTION_OFF or not self._moving:
            self._quiet_frames += 1
            if self._quiet_frames > MOTION_HANGOVER:
                self._moving = False

    def _camera_onsets(self, camera: CameraMotion, interval: float, out: list[Detection]) -> None:
        if camera.is_still:
            self._pan = self._tilt = self._zoom = ""
            return
        per = f"per {interval:.1f} s" if interval > 0 else "between frames"
        # Content moving left means the camera turned right.
        pan = "right" if camera.dx <= -CAMERA_SHIFT else ("left" if camera.dx >= CAMERA_SHIFT else "")
        tilt = "down" if camera.dy <= -CAMERA_SHIFT else ("up" if camera.dy >= CAMERA_SHIFT else "")
        log_scale = math.log(camera.scale) if camera.scale > 0 else 0.0
        zoom_limit = math.log1p(CAMERA_ZOOM)
        zoom = "in" if log_scale >= zoom_limit else ("out" if log_scale <= -zoom_limit else "")
        if pan and pan != self._pan:
            out.append(Detection(
                label="camera_pan",
                description=f"camera panning {pan} ({_pct(abs(camera.dx))} of the width {per})",
                confidence=round(camera.confidence, 3), backend=BACKEND,
            ))
        if tilt and tilt != self._tilt:
            out.append(Detection(
                label="camera_tilt",
                description=f"camera tilting {tilt} ({_pct(abs(camera.dy))} of the height {per})",
                confidence=round(camera.confidence, 3), backend=BACKEND,
            ))
        if zoom and zoom != self._zoom:
            out.append(Detection(
                label="zoom",
                description=f"zooming {zoom} (scale x{camera.scale:.2f} {per})",
                confidence=round(camera.confidence, 3), backend=BACKEND,
            ))
        self._pan, self._tilt, self._zoom = pan, tilt, zoom

    def _brightness_onset(self, step: float, luma: float, out: list[Detection]) -> str:
        if abs(step) < LUMA_STEADY:
            self._trend = 0
            self._drift = 0.0
            return ""
        sign = 1 if step > 0 else -1
        self._drift = self._drift + step if self._drift * step > 0 else step
        if sign != self._trend and (abs(step) >= LUMA_STEP or abs(self._drift) >= LUMA_DRIFT):
            self._trend = sign
            word = "brighter" if sign > 0 else "darker"
            out.append(Detection(
                label="brightness_change",
                description=(f"picture getting {word} (mean luma {luma - self._drift:.0f} -> {luma:.0f} "
                             "of 255)"),
                severity="low",
                confidence=round(min(1.0, abs(self._drift) / (2 * LUMA_DRIFT)), 3),
                backend=BACKEND,
            ))
        if self._trend == 0:
            return ""
        return "brighter" if self._trend > 0 else "darker"

    def _exposure_state(self, features: FrameFeatures, out: list[Detection]) -> str:
        if features.clipped_high >= OVER_CLIPPED and features.luma >= OVER_LUMA:
            state = "overexposed"
        elif features.clipped_low >= UNDER_CLIPPED and features.luma <= UNDER_LUMA:
            state = "underexposed"
        elif self._exposure == "overexposed" and features.clipped_high >= OVER_CLIPPED * 0.7:
            state = "overexposed"  # hysteresis: stay until clearly better
        elif self._exposure == "underexposed" and features.clipped_low >= UNDER_CLIPPED * 0.7:
            state = "underexposed"
        else:
            state = ""
        if state and state != self._exposure:
            share = features.clipped_high if state == "overexposed" else features.clipped_low
            kind = "blown out" if state == "overexposed" else "crushed to black"
            out.append(Detection(
                label=state,
                description=f"picture {state}: {_pct(share)} of the pixels {kind}",
                severity="medium",
                confidence=round(min(1.0, share), 3),
                backend=BACKEND,
            ))
        self._exposure = state
        return state
