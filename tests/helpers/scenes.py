"""Synthetic frame sequences and audio with known events, made with numpy/cv2 at test time."""

from __future__ import annotations

import cv2
import numpy as np

from helpers.frames import sampled_frame
from vision_stream.media.types import AudioChunk, SampledFrame

W, H = 768, 432  # px, the sampler's output size for 16:9 sources


def textured(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic natural-ish BGR texture: blurred noise blobs at several scales plus edges."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for scale in (4, 16, 64):
        noise = rng.random((height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) * 80
    for _ in range(40):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        size = (int(rng.integers(10, 60)), int(rng.integers(10, 60)))
        cv2.rectangle(image, (x, y), (x + size[0], y + size[1]), colour, -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def static_scene(seconds: int, seed: int = 1) -> list[SampledFrame]:
    still = textured(W, H, seed)
    return [sampled_frame(still, float(t), index=t, decoded=True) for t in range(seconds)]


def moving_square(seconds: int, start: int, seed: int = 1) -> list[SampledFrame]:
    """A 64 px square still until ``start`` s, then moving 40 px right per second, lower-left quarter."""
    background = textured(W, H, seed)
    frames = []
    for t in range(seconds):
        image = background.copy()
        x = 60 + 40 * max(0, t - start)
        cv2.rectangle(image, (x, 300), (x + 64, 364), (40, 220, 240), -1)
        frames.append(sampled_frame(image, float(t), index=t, decoded=True))
    return frames


def hard_cut(seconds: int, cut: int) -> list[SampledFrame]:
    first, second = textured(W, H, 1), textured(W, H, 2)
    second = cv2.applyColorMap(cv2.cvtColor(second, cv2.COLOR_BGR2GRAY), cv2.COLORMAP_OCEAN)
    return [sampled_frame(first if t < cut else second, float(t), index=t, decoded=True) for t in range(seconds)]


def pan(seconds: int, start: int, step: int = 50, direction: str = "right") -> list[SampledFrame]:
    """A window over a large texture, still until ``start``, then the camera turns ``step`` px/s."""
    big = textured(W * 3, H * 2, 7)
    frames = []
    for t in range(seconds):
        offset = step * max(0, t - start)
        if direction == "right":
            x, y = 100 + offset, 200
        elif direction == "left":
            x, y = 1200 - offset, 200
        elif direction == "down":
            x, y = 600, 60 + offset
        else:
            x, y = 600, 400 - offset
        frames.append(sampled_frame(np.ascontiguousarray(big[y:y + H, x:x + W]), float(t), index=t, decoded=True))
    return frames


def zoom(seconds: int, start: int, factor: float = 1.08) -> list[SampledFrame]:
    big = textured(W, H, 9)
    frames = []
    for t in range(seconds):
        scale = factor ** max(0, t - start)
        matrix = cv2.getRotationMatrix2D((W / 2, H / 2), 0, scale)
        warped = cv2.warpAffine(big, matrix, (W, H), borderMode=cv2.BORDER_REFLECT)
        frames.append(sampled_frame(warped, float(t), index=t, decoded=True))
    return frames


def brightness_ramp(seconds: int, start: int, per_second: float = 12.0) -> list[SampledFrame]:
    """Static textured scene whose exposure rises by ``per_second`` luma units per second from ``start``."""
    base = textured(W, H, 3).astype(np.float32) * 0.6 + 20
    return [sampled_frame(np.clip(base + per_second * max(0, t - start), 0, 255).astype(np.uint8), float(t),
                          index=t, decoded=True) for t in range(seconds)]


def tone_audio(seconds: float, bursts: list[tuple[float, float]], *, chunk_ms: int = 50, rate: int = 16000,
               noise_dbfs: float = -70.0, tone_dbfs: float = -20.0) -> list[AudioChunk]:
    """Low noise with 1 kHz tone bursts at (start, end) seconds, cut into PCM16 chunks."""
    rng = np.random.default_rng(5)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    signal = rng.normal(0, 32768 * 10 ** (noise_dbfs / 20), n)
    amplitude = 32768 * 10 ** (tone_dbfs / 20) * np.sqrt(2)
    for start, end in bursts:
        inside = (t >= start) & (t < end)
        signal[inside] += amplitude * np.sin(2 * np.pi * 1000 * t[inside])
    pcm = np.clip(signal, -32768, 32767).astype("<i2")
    size = rate * chunk_ms // 1000
    return [AudioChunk(pcm[i:i + size].tobytes(), i / rate, rate) for i in range(0, n, size)]
