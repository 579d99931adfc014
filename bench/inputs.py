"""Benchmark inputs, generated with PyAV: H.264 + AAC MP4s at a fixed GOP.

The pictures are a textured background panning under moving shapes, with a
hard scene cut every 10 s (a new background), so the encoder works like it
does on real footage (motion, texture, cuts) and the scene-change detector has
something to find. Audio is a tone with a slow tremolo (AAC, 48 kHz stereo).

Files are cached by their parameters (``cache_dir``); generating a 60 s 1080p
file costs about a minute of CPU once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["InputSpec", "ensure_input", "make_input"]

SCENE_SECONDS = 10.0  # a hard cut this often (seconds of media time)
_AUDIO_RATE = 48000


@dataclass(frozen=True, kw_only=True, slots=True)
class InputSpec:
    """One generated input: ``height``p at ``fps`` for ``seconds``, a keyframe every ``gop_seconds``."""

    height: int = 1080
    fps: int = 30
    seconds: float = 60.0
    gop_seconds: float = 1.0

    @property
    def width(self) -> int:
        return (self.height * 16 // 9) // 2 * 2

    @property
    def name(self) -> str:
        return f"{self.height}p{self.fps}_gop{self.gop_seconds:g}s_{self.seconds:g}s"

    @property
    def label(self) -> str:
        """Short label used in summary names, e.g. ``1080p_gop1``."""
        return f"{self.height}p_gop{self.gop_seconds:g}"


def _backgrounds(spec: InputSpec, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Textured RGB pictures larger than the frame (room to pan), one per scene."""
    h, w = spec.height, spec.width
    out = []
    for i in range(count):
        big_h, big_w = h + 256, w + 512
        # Low-frequency colour field plus fine noise: texture the encoder must spend bits on.
        coarse = rng.integers(0, 256, size=(big_h // 32 + 2, big_w // 32 + 2, 3), dtype=np.uint8)
        field = np.repeat(np.repeat(coarse, 32, axis=0), 32, axis=1)[:big_h, :big_w].astype(np.int16)
        noise = rng.integers(-24, 24, size=(big_h, big_w, 1), dtype=np.int16)
        ys = np.arange(big_h)[:, None, None]
        stripes = ((np.sin(ys / (7.0 + 3 * i)) * 30).astype(np.int16))
        out.append(np.clip(field + noise + stripes, 0, 255).astype(np.uint8))
    return out


def make_input(spec: InputSpec, path: Path) -> Path:
    """Encode ``spec`` to ``path`` (MP4, H.264 yuv420p ``preset=veryfast``, AAC)."""
    rng = np.random.default_rng(1234)
    frames = round(spec.seconds * spec.fps)
    scenes = max(1, math.ceil(spec.seconds / SCENE_SECONDS))
    backgrounds = _backgrounds(spec, scenes, rng)
    gop = max(1, round(spec.gop_seconds * spec.fps))
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as out:
        video = out.add_stream("libx264", rate=spec.fps)
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.codec_context.gop_size = gop
        # Fixed GOP (no scene-cut keyframes): the benchmark's GOP is what it says;
        # B-frames and CABAC on, as in typical camera/web encodes.
        video.options = {"preset": "veryfast", "crf": "23", "keyint_min": str(gop), "sc_threshold": "0",
                         "bf": "2"}
        audio = out.add_stream("aac", rate=_AUDIO_RATE)
        audio.layout = "stereo"
        samples_per_frame = 1024
        audio_pts = 0
        for i in range(frames):
            t = i / spec.fps
            scene = min(int(t // SCENE_SECONDS), scenes - 1)
            bg = backgrounds[scene]
            dx = int((t % SCENE_SECONDS) * 40) % 512
            dy = int((t % SCENE_SECONDS) * 10) % 256
            img = bg[dy : dy + spec.height, dx : dx + spec.width].copy()
            # Two moving boxes: local motion on top of the pan.
            for k in range(2):
                size = spec.height // 6
                x = int((spec.width - size) * (0.5 + 0.45 * math.sin(t * (0.7 + k))))
                y = int((spec.height - size) * (0.5 + 0.45 * math.cos(t * (0.5 + k))))
                img[y : y + size, x : x + size] = (255 * k, 200, 255 - 255 * k)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, spec.fps)
            for packet in video.encode(vf):
                out.mux(packet)
            # Audio up to this video frame's end time.
            target = round((i + 1) / spec.fps * _AUDIO_RATE)
            while audio_pts + samples_per_frame <= target:
                n = np.arange(audio_pts, audio_pts + samples_per_frame) / _AUDIO_RATE
                tone = 0.2 * np.sin(2 * np.pi * 440 * n) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * n))
                pcm = np.repeat(tone.astype(np.float32)[None, :], 2, axis=0)
                af = av.AudioFrame.from_ndarray(pcm, format="fltp", layout="stereo")
                af.sample_rate = _AUDIO_RATE
                af.pts = audio_pts
                af.time_base = Fraction(1, _AUDIO_RATE)
                audio_pts += samples_per_frame
                for packet in audio.encode(af):
                    out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    tmp.replace(path)
    return path


def ensure_input(spec: InputSpec, cache_dir: Path) -> Path:
    """The cached file for ``spec``, generated on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{spec.name}.mp4"
    if not path.exists():
        make_input(spec, path)
    return path
