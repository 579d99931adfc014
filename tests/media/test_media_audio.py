from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vision_stream.config import AudioPolicy
from vision_stream.media.audio import AudioConverter
from vision_stream.media.file_source import FileSource
from vision_stream.media.types import AudioChunk

POLICY = AudioPolicy(chunk_ms=20)  # 320 samples


def _tone(rate: int, seconds: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _frames_fltp_stereo(signal: np.ndarray, rate: int, start: float, size: int = 1024):
    for pos in range(0, signal.size, size):
        piece = signal[pos : pos + size]
        frame = av.AudioFrame.from_ndarray(np.stack([piece, piece]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = pos
        frame.time_base = Fraction(1, rate)
        yield frame, start + pos / rate


def _frames_s16_mono(signal: np.ndarray, rate: int, start: float, size: int = 960):
    pcm = (signal * 32767).astype(np.int16)
    for pos in range(0, pcm.size, size):
        frame = av.AudioFrame.from_ndarray(pcm[None, pos : pos + size], format="s16", layout="mono")
        frame.sample_rate = rate
        yield frame, start + pos / rate


def _dominant_hz(chunks: list[AudioChunk]) -> float:
    samples = np.concatenate([c.samples() for c in chunks]).astype(float)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * 16000 / samples.size)


def _assert_continuous(chunks: list[AudioChunk]) -> None:
    for a, b in itertools.pairwise(chunks):
        assert abs(b.media_time - (a.media_time + a.duration)) < 1e-9


def test_format_change_recreates_resampler_and_keeps_time() -> None:
    conv = AudioConverter(POLICY)
    first = [c for f, t in _frames_fltp_stereo(_tone(44100, 1.0), 44100, 2.0) for c in conv.push_frame(f, t)]
    assert conv.resamplers_created == 1
    second = [
        c for f, t in _frames_s16_mono(_tone(48000, 1.0, 500.0), 48000, 3.0) for c in conv.push_frame(f, t)
    ]
    assert conv.resamplers_created == 2
    chunks = first + second + conv.flush()

    assert all(c.sample_rate == 16000 for c in chunks)
    assert all(len(c.pcm) == 320 * 2 for c in chunks[:-1]) and 0 < len(chunks[-1].pcm) <= 640
    assert chunks[0].media_time == 2.0
    _assert_continuous(chunks)
    assert conv.reanchors == 0
    total = sum(len(c.pcm) for c in chunks) // 2
    assert abs(total - 32000) < 64  # 2 s of input -> 2 s of output (resampler delay flushed)
    # The content survives both conversions: 1 kHz then 500 Hz.
    assert abs(_dominant_hz(first[5:45]) - 1000) < 30
    assert abs(_dominant_hz(second[5:45]) - 500) < 30


def test_raw_pcm_downmix_and_passthrough() -> None:
    conv = AudioConverter(POLICY)
    tone = (_tone(16000, 0.5) * 32767).astype("<i2")
    passthrough = conv.push_pcm(tone.tobytes(), rate=16000, channels=1, media_time=0.0)
    assert conv.resamplers_created == 0  # already the session format: no resampler
    assert b"".join(c.pcm for c in passthrough) == tone.tobytes()[: len(passthrough) * 640]
    stereo = np.stack([tone, np.zeros_like(tone)], axis=1).reshape(-1)  # L = tone, R = silence
    more = conv.push_pcm(stereo.tobytes(), rate=16000, channels=2, media_time=0.5)
    mixed = np.concatenate([c.samples() for c in more])
    assert 8100 <= np.abs(mixed).max() <= 8200  # averaged: half of the 16383 peak
    _assert_continuous(passthrough + more)


def test_jump_reanchors_with_padding() -> None:
    conv = AudioConverter(POLICY)
    pcm = bytes(1000 * 2)  # 62.5 ms at 16 kHz: not a whole number of chunks
    out = conv.push_pcm(pcm, rate=16000, channels=1, media_time=10.0)
    out += conv.push_pcm(pcm, rate=16000, channels=1, media_time=10.0625)  # continuous
    out += conv.push_pcm(pcm, rate=16000, channels=1, media_time=20.0)  # a 10 s jump
    out += conv.flush()
    assert conv.reanchors == 1
    assert [round(c.media_time, 4) for c in out] == [
        10.0,
        10.02,
        10.04,
        10.06,
        10.08,
        10.1,
        10.12,
        20.0,
        20.02,
        20.04,
        20.06,
    ]
    assert all(len(c.pcm) == 640 for c in out[:-1])  # the pre-jump remainder was zero-padded


def test_sample_clip_audio_is_16k_mono_with_activity_timeline(sample_clip: Path) -> None:
    chunks = [i for i in FileSource(sample_clip, audio=AudioPolicy()).items() if isinstance(i, AudioChunk)]
    assert all(c.sample_rate == 16000 for c in chunks)
    assert all(len(c.pcm) == 800 * 2 for c in chunks[:-1])
    _assert_continuous(chunks)
    assert abs(chunks[-1].media_time + chunks[-1].duration - 12.0) < 0.05

    def rms(start: float, end: float) -> float:
        sel = [c for c in chunks if start <= c.media_time and c.media_time + c.duration <= end]
        return float(np.sqrt(np.mean(np.concatenate([c.samples() for c in sel]).astype(float) ** 2)))

    # samples/README.md audio timeline
    for quiet in ((0.1, 0.9), (3.6, 4.4), (5.6, 7.4), (10.6, 11.9)):
        assert rms(*quiet) < 100, quiet
    for speech in ((1.1, 3.4), (7.6, 10.4)):
        assert 1000 < rms(*speech) < 4000, speech
    assert rms(4.6, 5.4) > 5000
