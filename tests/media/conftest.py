"""Media fixtures: the shipped sample clip and clips generated with PyAV at test time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """samples/sample.mp4 (timeline in samples/README.md)."""
    path = SAMPLES / "sample.mp4"
    assert path.is_file(), "run samples/make_samples.py"
    return path


@pytest.fixture(scope="session")
def still_jpeg() -> bytes:
    return (SAMPLES / "still.jpg").read_bytes()


def write_video(
    path: Path,
    times_ms: Sequence[int],
    *,
    size: tuple[int, int] = (160, 120),
    picture: Callable[[int], np.ndarray] | None = None,
) -> None:
    """An MKV (time base 1 ms) of MJPEG frames at exactly ``times_ms`` (may be irregular)."""
    width, height = size
    with av.open(str(path), mode="w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate(times_ms):
            if picture is not None:
                bgr = picture(i)
            else:  # a bar moving across a gradient: real content, never a scene cut
                bgr = np.zeros((height, width, 3), np.uint8)
                bgr[..., 1] = np.linspace(40, 200, width, dtype=np.uint8)[None, :]
                x = (i * 3) % (width - 10)
                bgr[:, x : x + 10] = (255, 255, 255)
            frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
            frame.pts = ms
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def remux(src: Path, dst: Path, fmt: str, options: dict[str, str] | None = None) -> Path:
    """Copy the first video and audio streams of ``src`` into container ``fmt`` (no re-encode)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt, options=options or {}) as out:
        streams = list(inp.streams.video[:1]) + list(inp.streams.audio[:1])
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        for packet in inp.demux(streams):
            if packet.dts is None:  # demuxer's end-of-stream flush packet
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return dst


@pytest.fixture(name="write_video")
def write_video_fixture() -> Callable[..., None]:
    return write_video


@pytest.fixture(name="remux")
def remux_fixture() -> Callable[..., Path]:
    return remux
