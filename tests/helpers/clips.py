"""The one clip factory of the tests: real H.264 or MJPEG clips (optionally with AAC) made with PyAV.

Every test that needs a clip calls :func:`make_clip` with the parameters its
assertions rely on (duration, size, fps, GOP, cut time, audio, codec, container);
the pictures come from a painter, so a test states what the clip shows.
``bench/inputs.py`` and ``samples/make_samples.py`` make their own (they are not tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# (frame index, media time in s, width, height) -> a BGR picture.
Painter = Callable[[int, float, int, int], np.ndarray]

AUDIO_FRAME = 1024  # samples per AAC frame (FFmpeg's aac encoder wants exactly this many)
_CONTAINERS = {".ts": "mpegts", ".mkv": "matroska"}


def square_on_grey(*, step: int = 8, cut_at: float | None = None) -> Painter:
    """A 40 px yellow square moving ``step`` px per frame on grey; from ``cut_at`` s a hard cut to blue."""

    def paint(i: int, t: float, width: int, height: int) -> np.ndarray:
        cut = cut_at is not None and t >= cut_at
        img = np.full((height, width, 3), 30 if cut else 90, np.uint8)
        if cut:
            img[:, :, 0] = 200
        x = (10 + i * step) % (width - 40)
        img[height // 2 - 20 : height // 2 + 20, x : x + 40] = (0, 220, 255)
        return img

    return paint


def moving_block(i: int, t: float, width: int, height: int) -> np.ndarray:
    """A white 40 px block crossing the middle 7 px per frame over a slowly brightening green."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :, 1] = (i * 3) % 255
    x = (i * 7) % (width - 40)
    img[height // 2 - 20 : height // 2 + 20, x : x + 40] = 255
    return img


def gradient_bar(i: int, t: float, width: int, height: int) -> np.ndarray:
    """A white 10 px bar moving across a green gradient: real content, never a scene cut."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 1] = np.linspace(40, 200, width, dtype=np.uint8)[None, :]
    x = (i * 3) % (width - 10)
    img[:, x : x + 10] = (255, 255, 255)
    return img


def noise(seed: int) -> Painter:
    """Uniform random pixels, a fresh picture per frame (worst case for the encoder)."""
    rng = np.random.default_rng(seed)
    return lambda i, t, width, height: rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)


def make_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: int = 10,
    size: tuple[int, int] = (320, 240),
    cut_at: float | None = None,
    picture: Painter | None = None,
    codec: str = "libx264",
    container: str | None = None,
    gop: int | None = None,
    bframes: int | None = None,
    scenecut: bool = True,
    preset: str | None = "ultrafast",
    tune: str | None = None,
    audio: bool = False,
    audio_rate: int = 16000,
    audio_layout: str = "mono",
    start_frame: int = 0,
    times_ms: Sequence[int] | None = None,
) -> Path:
    """Write a clip to ``path`` and return ``path``.

    ``picture`` defaults to :func:`square_on_grey` (8 px per frame, cut to blue at ``cut_at``).
    Frames are ``seconds * fps`` frames at ``start_frame + i`` in time base 1/fps, or, with
    ``times_ms``, one frame at each of those (possibly irregular) times in time base 1/1000.
    ``container`` defaults to the suffix's (``.ts`` MPEG-TS with SPS/PPS in-band, so TS files
    concatenate; ``.mkv`` Matroska; else MP4). ``gop``/``bframes``/``scenecut``/``preset``/``tune``
    are libx264's ``g``/``bf``/``sc_threshold``/``preset``/``tune``; unset means x264's default
    (keyint 250 plus a keyframe at each scene cut). ``audio`` adds a 440 Hz AAC tone.
    """
    paint = picture or square_on_grey(cut_at=cut_at)
    width, height = size
    fmt = container or _CONTAINERS.get(path.suffix)
    with av.open(str(path), "w", format=fmt) as out:
        video = _video_stream(out, codec, fps, size, gop=gop, bframes=bframes, scenecut=scenecut,
                              preset=preset, tune=tune)
        sound = _audio_stream(out, audio_rate, audio_layout) if audio else None
        samples = 0
        for i, (pts, time_base) in enumerate(_timestamps(seconds, fps, start_frame, times_ms)):
            frame = av.VideoFrame.from_ndarray(paint(i, float(pts * time_base), width, height), format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            out.mux(video.encode(frame))
            while sound is not None and samples < (i + 1) * audio_rate // fps:
                out.mux(sound.encode(_tone(samples, start_frame * audio_rate // fps, audio_rate, audio_layout)))
                samples += AUDIO_FRAME
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path


def _video_stream(out: av.container.OutputContainer, codec: str, fps: int, size: tuple[int, int], *,
                  gop: int | None, bframes: int | None, scenecut: bool, preset: str | None,
                  tune: str | None) -> av.VideoStream:
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    if codec == "mjpeg":  # full-range YUV, as cameras send it; one picture per packet, no GOP
        stream.pix_fmt = "yuvj420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        return stream
    stream.pix_fmt = "yuv420p"
    options = {"g": gop, "bf": bframes, "preset": preset, "tune": tune,
               "sc_threshold": None if scenecut else 0}
    stream.options = {key: str(value) for key, value in options.items() if value is not None}
    return stream


def _audio_stream(out: av.container.OutputContainer, rate: int, layout: str) -> av.AudioStream:
    stream = out.add_stream("aac", rate=rate)
    stream.layout = layout
    return stream


def _timestamps(seconds: float, fps: int, start_frame: int,
                times_ms: Sequence[int] | None) -> Iterator[tuple[int, Fraction]]:
    if times_ms is not None:
        for ms in times_ms:
            yield ms, Fraction(1, 1000)
        return
    for i in range(int(seconds * fps)):
        yield start_frame + i, Fraction(1, fps)


def _tone(sample: int, offset: int, rate: int, layout: str) -> av.AudioFrame:
    """``AUDIO_FRAME`` samples of a 440 Hz tone from ``sample`` on, packed s16 (the encoder converts)."""
    t = np.arange(sample, sample + AUDIO_FRAME)
    tone = (3000 * np.sin(2 * np.pi * 440 * t / rate)).astype(np.int16)
    channels = 2 if layout == "stereo" else 1
    frame = av.AudioFrame.from_ndarray(np.repeat(tone, channels).reshape(1, -1), format="s16", layout=layout)
    frame.sample_rate, frame.pts = rate, sample + offset
    return frame


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


# ---- remuxed cuts of real clips (no re-encoding)


def trimmed(source: Path, out: Path, seconds: float) -> Path:
    """The first ``seconds`` of ``source``, remuxed (no re-encoding): shorter real-time replays."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream = src.streams.video[0]
        copy = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            if packet.pts is not None and float(packet.pts * stream.time_base) > seconds:
                break
            packet.stream = copy
            dst.mux(packet)
    return out


def repeated(src: Path, times: int, out: Path) -> Path:
    """``src`` played ``times`` times back to back, remuxed (PyAV packets, timestamps
    shifted by each pass's end; no re-encoding)."""
    with av.open(str(src)) as inp, av.open(str(out), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        offset = dict.fromkeys(streams, 0)
        for _ in range(times):
            inp.seek(0)
            end = dict(offset)
            for packet in inp.demux(*[inp.streams[i] for i in streams]):
                if packet.dts is None:  # the demuxer's flush packet
                    continue
                i = packet.stream.index
                if packet.pts is not None:
                    end[i] = max(end[i], offset[i] + packet.pts + (packet.duration or 0))
                    packet.pts += offset[i]
                packet.dts += offset[i]
                packet.stream = streams[i]
                dst.mux(packet)
            offset = end
    return out
