"""Rolling statistics of what the signals showed, phrased as commentary.

An :class:`ActivityLog` accumulates :class:`FrameReport` and
:class:`AudioReport` values for one span (the time since the last prompt, or a
whole session) in constant memory: counters, sums, a 3x3 grid of where motion
was, and short bounded lists of notable moments.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from .audio import SILENCE_DBFS, AudioReport
from .colour import ColourSummary
from .video import PLACE_NAMES, FrameReport

MAX_MOMENTS = 6  # notable moments (cuts, pans, ...) remembered per span
TRAVEL = 0.15  # net movement of an object's box centre (fraction of the frame) that counts as "moving"
NAMED_ORDER = ("vehicle", "person")  # labels the commentary names, in this order (faces count as people)


class _Track:
    """Where one label was named over a span: frames, first time, summed centres and net travel."""

    def __init__(self, media_time: float) -> None:
        self.first = media_time
        self.frames = 0
        self.sum_x = self.sum_y = 0.0
        self.travel_x = self.travel_y = 0.0
        self.last: tuple[float, float] | None = None  # centre in the previous frame, if named there

    def add(self, centre: tuple[float, float] | None) -> None:
        if centre is None:
            self.last = None
            return
        self.frames += 1
        self.sum_x += centre[0]
        self.sum_y += centre[1]
        if self.last is not None:
            self.travel_x += centre[0] - self.last[0]
            self.travel_y += centre[1] - self.last[1]
        self.last = centre

    def where(self) -> str:
        """"moving left to right" when the box travelled, else "in the centre" (its mean place)."""
        if max(abs(self.travel_x), abs(self.travel_y)) >= TRAVEL:
            if abs(self.travel_x) >= abs(self.travel_y):
                return "moving left to right" if self.travel_x > 0 else "moving right to left"
            return "moving top to bottom" if self.travel_y > 0 else "moving bottom to top"
        cx, cy = self.sum_x / self.frames, self.sum_y / self.frames
        return "in " + PLACE_NAMES[min(2, int(cy * 3))][min(2, int(cx * 3))]


def seconds_label(media_time: float) -> str:
    """Default time wording: "6.0 s"."""
    return f"{media_time:.1f} s"


def _pct(fraction: float) -> str:
    value = fraction * 100
    return f"{value:.1f}%" if 0 < value < 10 else f"{value:.0f}%"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


class ActivityLog:
    """Counters for one span of media; bounded whatever its length."""

    def __init__(self) -> None:
        self.start: float | None = None  # seconds, media time the span starts at
        self.end: float | None = None  # seconds, latest media time seen
        self.frames = 0
        self.compared = 0  # frames that had a previous frame to compare with
        self.moving_frames = 0
        self.motion_sum = 0.0  # sum of moving fractions over moving frames
        self.grid = [[0.0] * 3 for _ in range(3)]  # motion area by position
        self.cuts = 0
        self.cut_times: deque[float] = deque(maxlen=MAX_MOMENTS)
        self.camera: deque[tuple[float, str]] = deque(maxlen=MAX_MOMENTS)  # (time, "panned right")
        self.camera_moves = 0
        self.brightness: deque[tuple[float, str]] = deque(maxlen=MAX_MOMENTS)
        self.exposure: deque[tuple[float, str]] = deque(maxlen=MAX_MOMENTS)
        self.colours: ColourSummary | None = None  # of the latest frame
        self.audio_seconds = 0.0
        self.active_seconds = 0.0
        self.active_energy = 0.0  # sum of linear power x seconds over active chunks
        self.peak_dbfs = SILENCE_DBFS
        self.onsets = 0
        self.longest_silence: tuple[float, float] | None = None
        self.named: dict[str, _Track] = {}  # label -> where it was named

    def mark(self, media_time: float | None) -> None:
        """Start the span at ``media_time`` (e.g. where the previous span ended)."""
        if media_time is not None:
            self.start = media_time
            self.end = media_time

    def _seen(self, media_time: float, end: float) -> None:
        if self.start is None:
            self.start = media_time
        self.end = end if self.end is None else max(self.end, end)

    def add_frame(self, report: FrameReport) -> None:
        self._seen(report.media_time, report.media_time)
        self.frames += 1
        self.colours = report.colours
        if not report.first:
            self.compared += 1
        for detection in report.detections:
            if detection.label == "scene_cut":
                self.cuts += 1
                self.cut_times.append(report.media_time)
            elif detection.label in ("camera_pan", "camera_tilt", "zoom"):
                self.camera_moves += 1
                words = detection.description.split(" (")[0]
                words = words.replace("camera panning", "panned").replace("camera tilting", "tilted")
                self.camera.append((report.media_time, words.replace("zooming", "zoomed")))
            elif detection.label == "brightness_change":
                word = "brighter" if "brighter" in detection.description else "darker"
                self.brightness.append((report.media_time, word))
            elif detection.label in ("overexposed", "underexposed"):
                self.exposure.append((report.media_time, detection.label))
        self._add_objects(report)
        motion = report.motion
        if motion.fraction > 0 and motion.regions:
            self.moving_frames += 1
            self.motion_sum += motion.fraction
            for region, area in zip(motion.regions, motion.areas, strict=True):
                cx = min(2, int((region.x + region.width / 2) * 3))
                cy = min(2, int((region.y + region.height / 2) * 3))
                self.grid[cy][cx] += area

    def _add_objects(self, report: FrameReport) -> None:
        """Follow the most confident box of each named label (a face names a person too)."""
        best: dict[str, tuple[float, tuple[float, float]]] = {}
        for found in report.objects:
            label = "person" if found.label == "face" else found.label
            centre = (found.box.x + found.box.width / 2, found.box.y + found.box.height / 2)
            if label not in best or found.confidence > best[label][0]:
                best[label] = (found.confidence, centre)
        for label in set(best) | set(self.named):
            track = self.named.setdefault(label, _Track(report.media_time))
            track.add(best[label][1] if label in best else None)

    def objects_phrase(self, when: Callable[[float], str]) -> list[str]:
        """"a vehicle moving bottom to top (in 6 of 31 frames, first at 5.0 s)" per named label."""
        parts = []
        for label in NAMED_ORDER:
            track = self.named.get(label)
            if track is None or track.frames == 0:
                continue
            parts.append(f"a {label} {track.where()} (in {track.frames} of {self.frames} frames, "
                         f"first at {when(track.first)})")
        return parts

    def add_audio(self, report: AudioReport) -> None:
        self._seen(report.media_time, report.media_time + report.duration)
        self.audio_seconds += report.duration
        self.peak_dbfs = max(self.peak_dbfs, report.level)
        if report.active:
            self.active_seconds += report.duration
            self.active_energy += 10 ** (report.level / 10) * report.duration
        if report.onset is not None:
            self.onsets += 1
        if report.silence is not None:
            self.note_silence(report.silence)

    def note_silence(self, silence: tuple[float, float]) -> None:
        if self.longest_silence is None or (silence[1] - silence[0]) > (
            self.longest_silence[1] - self.longest_silence[0]
        ):
            self.longest_silence = silence

    # -- phrasing ---------------------------------------------------------------

    def _where(self) -> str:
        total = sum(sum(row) for row in self.grid)
        if total <= 0:
            return ""
        cells = ((self.grid[r][c], r, c) for r in range(3) for c in range(3))
        best = max(cells, key=lambda v: (v[0], -v[1], -v[2]))  # ties: the upper-left-most cell
        if best[0] / total < 0.4:
            return "across the frame"
        return "in " + PLACE_NAMES[best[1]][best[2]]

    def motion_phrase(self) -> str:
        if self.compared == 0:
            return ""
        if self.moving_frames == 0:
            return "no motion"
        share = self.moving_frames / self.compared
        kind = "steady" if share >= 0.7 else ("intermittent" if share >= 0.25 else "brief")
        mean = self.motion_sum / self.moving_frames
        return (f"{kind} motion {self._where()} ({_pct(mean)} of the frame when moving, "
                f"in {_pct(share)} of frames)")

    def moments_phrase(self, when: Callable[[float], str]) -> list[str]:
        parts: list[str] = []
        if self.cuts:
            times = ", ".join(when(t) for t in self.cut_times)
            more = ", ..." if self.cuts > len(self.cut_times) else ""
            if self.cuts == 1:
                parts.append(f"one scene cut at {times}")
            else:
                parts.append(f"{_NUMBERS.get(self.cuts, str(self.cuts))} scene cuts (at {times}{more})")
        if self.camera:
            moves = [f"{words} at {when(t)}" for t, words in self.camera]
            more = " and more" if self.camera_moves > len(self.camera) else ""
            parts.append("the camera " + _join(moves) + more)
        for t, word in self.brightness:
            parts.append(f"the picture got {word} at {when(t)}")
        for t, state in self.exposure:
            parts.append(f"{state} from {when(t)}")
        return parts

    def audio_phrase(self, when: Callable[[float], str]) -> str:
        if self.audio_seconds <= 0:
            return ""
        if self.active_seconds <= 0:
            if self.peak_dbfs <= SILENCE_DBFS:
                return "the audio was digital silence"
            return f"no audio activity (peak {self.peak_dbfs:.0f} dBFS)"
        share = min(1.0, self.active_seconds / self.audio_seconds)
        loudness = self.active_energy / self.active_seconds
        mean_db = 10 * math.log10(loudness) if loudness > 0 else SILENCE_DBFS
        onsets = f"{self.onsets} onset{'s' if self.onsets != 1 else ''}"
        text = (f"audio active {_pct(share)} of the time ({onsets}), "
                f"about {mean_db:.0f} dBFS when active, peaking at {self.peak_dbfs:.0f} dBFS")
        if self.longest_silence is not None:
            start, end = self.longest_silence
            text += f"; longest silence {end - start:.1f} s from {when(start)}"
        return text

    def phrase(self, *, when: Callable[[float], str] = seconds_label, frames_word: str = "frames") -> str:
        """One or two sentences: motion, moments, audio and the current picture."""
        parts = [p for p in [*self.objects_phrase(when), self.motion_phrase(), *self.moments_phrase(when),
                             self.audio_phrase(when)] if p]
        if not parts:
            parts = ["nothing to report yet (no frames or audio received)"]
        text = "; ".join(parts) + "."
        if self.colours is not None:
            text += f" Now: {self.colours.phrase()}."
        return text

    def span_phrase(self) -> str:
        """"10.0 s, 11 frames" style description of the span."""
        length = (self.end - self.start) if self.start is not None and self.end is not None else 0.0
        return f"{length:.1f} s, {self.frames} frame{'s' if self.frames != 1 else ''}"
