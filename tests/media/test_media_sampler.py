from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from helpers.clips import gradient_bar, make_clip

from vision_stream.config import AudioPolicy, SamplingPolicy
from vision_stream.media.file_source import FileSource
from vision_stream.media.image import probe_image_size
from vision_stream.media.sampler import FrameSampler
from vision_stream.media.types import SampledFrame, VideoFrame


def mjpeg_clip(path: Path, times_ms: Sequence[int]) -> Path:
    """160x120 MJPEG in Matroska (time base 1 ms) with a frame at exactly each of ``times_ms``."""
    return make_clip(path, codec="mjpeg", fps=25, size=(160, 120), picture=gradient_bar, times_ms=times_ms)


def _run(path: Path, policy: SamplingPolicy) -> tuple[FrameSampler, list[SampledFrame], list[float]]:
    sampler = FrameSampler(policy)
    samples: list[SampledFrame] = []
    times: list[float] = []
    for item in FileSource(path, audio=AudioPolicy()).items():
        if isinstance(item, VideoFrame):
            times.append(item.media_time)
            sampled = sampler.offer(item)
            # Only the sampler converts, and only what it samples.
            assert item.converted == (sampled is not None)
            if sampled is not None:
                samples.append(sampled)
    return sampler, samples, times


def test_sample_clip_cadence_and_scene_cut(sample_clip: Path) -> None:
    policy = SamplingPolicy()
    sampler, samples, times = _run(sample_clip, policy)
    assert len(times) == 300 and sampler.frames_in == 300
    assert sampler.probes == 60  # 5 per second of media time, not per frame
    scene = [s for s in samples if s.reason == "scene"]
    assert len(scene) == 1, [(s.media_time, s.scene_score) for s in samples]
    assert scene[0].media_time == pytest.approx(6.6, abs=0.01)  # samples/README.md: the cut
    assert scene[0].scene_score >= policy.scene_threshold
    # The 9-10 s dimming is gradual: it never counts as a scene change.
    assert [round(s.media_time, 2) for s in samples] == [0, 1, 2, 3, 4, 5, 6, 6.6, 7.12, 8, 9, 10, 11]
    assert [s.index for s in samples] == list(range(13))
    assert sampler.sampled == 13 and sampler.scene_samples == 1
    for s in samples:  # JPEG bounds and content
        assert probe_image_size(s.jpeg) == ("jpeg", 640, 360)
        assert s.pixels.shape == (360, 640, 3) and (s.width, s.height) == (640, 360)
    assert 0 < sampler.encode_percentile(50) <= sampler.encode_percentile(99)


def test_max_side_bounds_jpeg(sample_clip: Path) -> None:
    _, samples, _ = _run(sample_clip, SamplingPolicy(max_side=200, jpeg_quality=60, fps=0.5))
    assert samples
    for s in samples:
        assert probe_image_size(s.jpeg) == ("jpeg", 200, 112)
        assert s.pixels.shape == (112, 200, 3)


def test_vfr_clip_rate_honoured(tmp_path: Path) -> None:
    rng = random.Random(7)
    times_ms = [3000]  # starts at pts 3 s: media time still starts at 0
    while times_ms[-1] < 13000:
        times_ms.append(times_ms[-1] + rng.choice((10, 33, 40, 90, 200)))
    path = tmp_path / "vfr.mkv"
    mjpeg_clip(path, times_ms)
    policy = SamplingPolicy(fps=2, max_fps=4)
    sampler, samples, times = _run(path, policy)

    # pts survive decoding; media time is relative to the first timestamp
    assert times == pytest.approx([(ms - 3000) / 1000 for ms in times_ms])
    # Every 0.5 s slot holds frames here, so each slot's first frame is the sample.
    expected = []
    for t in times:
        slot = math.floor(t * policy.fps + 1e-9)
        if not expected or slot > math.floor(expected[-1] * policy.fps + 1e-9):
            expected.append(t)
    assert [s.media_time for s in samples] == pytest.approx(expected)
    assert sampler.scene_samples == 0
    assert sampler.probes == pytest.approx(10 * policy.probe_fps, abs=2)


def test_pts_and_time_base_kept(tmp_path: Path) -> None:
    path = tmp_path / "pts.mkv"
    mjpeg_clip(path, [500, 540, 700, 1500])
    frames = [i for i in FileSource(path, audio=AudioPolicy()).items() if isinstance(i, VideoFrame)]
    assert [f.pts for f in frames] == [500, 540, 700, 1500]
    assert all(f.time_base is not None and f.time_base.denominator == 1000 for f in frames)
    assert [f.media_time for f in frames] == pytest.approx([0.0, 0.04, 0.2, 1.0])
    assert not any(f.converted for f in frames)


def _noise_frame(t: float, seed: int) -> VideoFrame:
    rng = np.random.default_rng(seed)
    return VideoFrame.from_bgr(rng.integers(0, 256, (36, 64, 3), dtype=np.uint8), media_time=t)


@pytest.mark.parametrize("max_fps", [1.0, 2.0, 7.5])
def test_max_fps_never_exceeded(max_fps: float) -> None:
    """Every frame is a scene change and timestamps are irregular: the cap still holds."""
    policy = SamplingPolicy(fps=1, max_fps=max_fps, probe_fps=60, scene_threshold=0.05)
    sampler = FrameSampler(policy)
    rng = random.Random(3)
    t, sampled = 0.0, []
    for i in range(600):
        t += rng.choice((0.001, 0.01, 0.016, 0.05, 0.12))
        decision = sampler.decide(_noise_frame(t, i))
        if decision is not None:
            sampled.append(t)
    gaps = np.diff(sampled)
    assert gaps.min() >= 1 / max_fps - 1e-6
    assert len(sampled) <= (sampled[-1] - sampled[0]) * max_fps + 1
    assert sampler.scene_samples > len(sampled) / 2  # the scene rule did the work


def test_paced_and_fast_decisions_identical() -> None:
    """Decisions depend on media time only: the same frames give the same samples."""
    policy = SamplingPolicy(fps=2, max_fps=4, probe_fps=10, scene_threshold=0.2)
    runs = []
    for _ in range(2):
        sampler = FrameSampler(policy)
        runs.append(
            [
                (d.reason, d.index)
                for i in range(200)
                if (d := sampler.decide(_noise_frame(i * 0.04, i // 37))) is not None
            ]
        )
    assert runs[0] == runs[1] and any(reason == "scene" for reason, _ in runs[0])


def test_timestamp_reset_restarts_grid() -> None:
    sampler = FrameSampler(SamplingPolicy(fps=1))
    frame = np.zeros((36, 64, 3), np.uint8)
    picks = [
        t
        for t in (100.0, 100.5, 101.0, 0.0, 0.5, 1.0)
        if sampler.decide(VideoFrame.from_bgr(frame, media_time=t)) is not None
    ]
    assert picks == [100.0, 101.0, 0.0, 1.0]
