"""``vision-stream frames``: write exactly the JPEGs a session would send to the model."""

from __future__ import annotations

from pathlib import Path

from ..config import SamplingPolicy
from .open import open_source
from .sampler import FrameSampler
from .types import VideoFrame


def export_frames(source: str, out_dir: Path, sampling: SamplingPolicy) -> int:
    """Sample ``source`` as a ``--fast`` session would and write each JPEG; returns the count.

    Names are ``{index:05d}_{media_time:09.3f}s_{reason}.jpg`` so the order and
    the reason (cadence or scene change) are visible in a file listing.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # Video only (the audio is not even demuxed), and keyframes only when the
    # file's GOP fits the sampling interval: exactly what a --fast session samples.
    media = open_source(source, audio=None, sample_interval=1.0 / sampling.fps)
    sampler = FrameSampler(sampling)
    count = 0
    try:
        for item in media.items():
            if not isinstance(item, VideoFrame):
                continue
            sampled = sampler.offer(item)
            if sampled is None:
                continue
            name = f"{sampled.index:05d}_{sampled.media_time:09.3f}s_{sampled.reason}.jpg"
            (out_dir / name).write_bytes(sampled.jpeg)
            count += 1
    finally:
        media.close()
    return count
