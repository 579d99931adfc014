"""Audio loudness and a VAD-like activity detector (energy with an adaptive floor).

Per chunk (20-100 ms of PCM16 mono): RMS level in dBFS (0 dBFS = full-scale
square wave; digital silence is reported as :data:`SILENCE_DBFS`). A chunk is
*loud* when its level is above both an absolute threshold and the tracked noise
floor plus a margin; activity lasts while chunks are loud, plus a hangover so
the gaps between words do not split one activity into many. The onset of an
activity yields an ``audio_activity`` detection.

Deterministic and clock-free: time comes from the chunks' media times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..events import Detection

SILENCE_DBFS = -120.0  # reported level of digital silence
KNOWN_FLOOR_DBFS = -100.0  # a floor below this is still the start value (or digital silence)
ACTIVITY_DBFS = -50.0  # absolute level below which nothing counts as activity
FLOOR_MARGIN_DB = 12.0  # activity must also be this far above the noise floor
FLOOR_RISE_DB_PER_S = 1.0  # how fast the floor creeps up under sustained loud input
FLOOR_FOLLOW_DB_PER_S = 30.0  # how fast it rises to follow quiet (non-active) input
HANGOVER_S = 0.3  # activity continues this long after the last loud chunk
MIN_SILENCE_S = 1.0  # quieter stretches shorter than this are not reported as silences


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (<= 0; SILENCE_DBFS for silence/empty)."""
    if samples.size == 0:
        return SILENCE_DBFS
    values = samples.astype(np.float64)
    rms = math.sqrt(float(np.dot(values, values)) / samples.size)
    if rms < 1e-9:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(rms / 32768.0))


@dataclass(frozen=True, slots=True)
class AudioReport:
    """One chunk's level and activity.

    media_time / duration: seconds. level: dBFS. active: inside an activity
    (including hangover). onset: this chunk started an activity.
    silence: (start, end) seconds of the silence this onset ended, when >= 1 s.
    """

    media_time: float
    duration: float
    level: float
    active: bool
    onset: Detection | None = None
    silence: tuple[float, float] | None = None


class AudioActivityDetector:
    """Energy-threshold activity detector with hangover; one per session."""

    def __init__(self) -> None:
        self._floor = SILENCE_DBFS  # start low so a sound at t=0 is an onset
        self._active = False
        self._last_loud_end = -math.inf
        self._quiet_since: float | None = None  # start of the current inactive stretch
        self._end = 0.0  # media time of the end of the last chunk

    @property
    def active(self) -> bool:
        return self._active

    def process(self, samples: np.ndarray, media_time: float, sample_rate: int) -> AudioReport:
        """Level and activity of one chunk of int16 mono ``samples``."""
        duration = samples.size / float(sample_rate) if sample_rate > 0 else 0.0
        level = level_dbfs(samples)
        loud = level >= ACTIVITY_DBFS and level >= self._floor + FLOOR_MARGIN_DB
        # The floor drops at once to anything quieter, follows quiet input
        # quickly, and creeps up under loud input, so a steady background (hum,
        # traffic) eventually stops counting as activity.
        if level < self._floor:
            self._floor = level
        else:
            rise = (FLOOR_RISE_DB_PER_S if loud else FLOOR_FOLLOW_DB_PER_S) * duration
            self._floor = min(level, self._floor + rise)
        onset: Detection | None = None
        silence: tuple[float, float] | None = None
        if loud:
            self._last_loud_end = media_time + duration
            if not self._active:
                self._active = True
                quiet_since = self._quiet_since if self._quiet_since is not None else media_time
                if media_time - quiet_since >= MIN_SILENCE_S:
                    silence = (quiet_since, media_time)
                self._quiet_since = None
                onset = Detection(
                    label="audio_activity",
                    description=f"sound started at {level:.0f} dBFS" + (
                        f" ({level - self._floor:.0f} dB above the background)"
                        if self._floor > KNOWN_FLOOR_DBFS else ""),
                    severity="info",
                    confidence=round(min(1.0, (level - ACTIVITY_DBFS) / 30.0 + 0.3), 3),
                    backend="local",
                )
        elif self._active and media_time + duration - self._last_loud_end > HANGOVER_S:
            self._active = False
            self._quiet_since = self._last_loud_end
        if not self._active and self._quiet_since is None:
            self._quiet_since = media_time
        self._end = media_time + duration
        return AudioReport(media_time, duration, level, self._active, onset, silence)

    def trailing_silence(self) -> tuple[float, float] | None:
        """The silence running at the end of the input so far, when >= 1 s."""
        if self._active or self._quiet_since is None:
            return None
        if self._end - self._quiet_since < MIN_SILENCE_S:
            return None
        return self._quiet_since, self._end
