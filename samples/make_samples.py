"""Generate the project's own sample media, deterministically.

    python samples/make_samples.py        # writes samples/sample.mp4 and samples/still.jpg

Everything is computed from fixed seeds and formulas, so the content (and the
timeline documented in samples/README.md) never changes; tests assert
detections at those times. Needs only PyAV, numpy and OpenCV (drawing, JPEG).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent

WIDTH, HEIGHT, FPS = 640, 360, 25
DURATION = 12.0  # seconds
CUT_FRAME = 165  # 6.6 s: hard cut from scene A to scene B
DIM_START, DIM_END, DIM_LEVEL = 9.0, 10.0, 0.4  # seconds, seconds, final brightness factor
AUDIO_RATE = 44100  # Hz; deliberately not 16 kHz so sources must resample
# (start, end, kind) in seconds; gaps between segments are near-silence.
AUDIO_SEGMENTS = ((1.0, 3.5, "speech"), (4.5, 5.5, "tone"), (7.5, 10.5, "speech"))
TONE_HZ = 440.0


def _texture(seed: int, tint: tuple[float, float, float], scale: int, lo: float, hi: float) -> np.ndarray:
    """Low-frequency coloured noise (cheap to encode) between ``lo`` and ``hi`` (0..1) plus
    faint stripes, BGR uint8."""
    rng = np.random.default_rng(seed)
    h, w = HEIGHT // scale + 2, (WIDTH * 2) // scale + 2  # twice as wide: room to pan
    noise = rng.random((h, w)).astype(np.float32)
    big = cv2.resize(noise, (WIDTH * 2, HEIGHT), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), scale / 3)
    ys, xs = np.mgrid[0:HEIGHT, 0 : WIDTH * 2].astype(np.float32)
    stripes = 0.08 * np.sin(xs / 23.0 + ys / 41.0)
    base = np.clip(lo + (hi - lo) * big + stripes, 0, 1)
    return (np.stack([base * c for c in tint], axis=-1) * 255).astype(np.uint8)


BG_A = None
BG_B = None


def video_frame(index: int) -> np.ndarray:
    """Frame ``index`` of the clip as BGR uint8 (HEIGHT, WIDTH, 3)."""
    global BG_A, BG_B
    t = index / FPS
    if index < CUT_FRAME:
        # Scene A: dark blue-green "night" field, static camera, three moving objects.
        if BG_A is None:
            BG_A = _texture(1, (0.75, 0.55, 0.25), 40, 0.15, 0.45)
        img = BG_A[:, :WIDTH].copy()
        x = int(40 + (WIDTH - 80) * (t / 6.6))  # red ball crosses left to right
        cv2.circle(img, (x, 120), 34, (30, 30, 220), -1, cv2.LINE_AA)
        y = int(HEIGHT / 2 + 110 * math.sin(2 * math.pi * t / 2.0))  # yellow square bounces
        cv2.rectangle(img, (470, y - 28), (526, y + 28), (40, 220, 240), -1, cv2.LINE_AA)
        bx = int(WIDTH - 60 - (WIDTH - 160) * ((t / 3.3) % 1.0))  # blue bar, right to left
        cv2.rectangle(img, (bx, 270), (bx + 90, 300), (200, 80, 20), -1, cv2.LINE_AA)
        return img
    # Scene B: bright warm "day" field, camera pans right at 40 px/s, two objects.
    if BG_B is None:
        BG_B = _texture(2, (0.55, 0.85, 1.0), 24, 0.55, 0.95)
    tb = t - CUT_FRAME / FPS
    pan = int(40 * tb)
    img = BG_B[:, pan : pan + WIDTH].copy()
    cx, cy = int(120 + 60 * tb), int(80 + 35 * tb)  # blue disc drifts down-right
    cv2.circle(img, (cx, cy), 40, (200, 120, 20), -1, cv2.LINE_AA)
    angle = tb * 1.5  # purple triangle rotates in place
    pts = np.array(
        [(430 + 60 * math.cos(angle + k * 2.094), 200 + 60 * math.sin(angle + k * 2.094)) for k in range(3)],
        dtype=np.int32,
    )
    cv2.fillPoly(img, [pts], (60, 20, 120), cv2.LINE_AA)
    if t >= DIM_START:  # the lights dim: linear fade to DIM_LEVEL over one second
        level = 1.0 - (1.0 - DIM_LEVEL) * min(1.0, (t - DIM_START) / (DIM_END - DIM_START))
        img = (img.astype(np.float32) * level).astype(np.uint8)
    return img


def audio_track() -> np.ndarray:
    """The whole soundtrack, float32 (2, samples) in -1..1 at AUDIO_RATE."""
    n = int(DURATION * AUDIO_RATE)
    t = np.arange(n, dtype=np.float64) / AUDIO_RATE
    rng = np.random.default_rng(3)
    out = rng.normal(0.0, 0.0008, n)  # noise floor about -62 dBFS: "silence" is never digital zero
    for start, end, kind in AUDIO_SEGMENTS:
        sel = (t >= start) & (t < end)
        ts = t[sel] - start
        if kind == "tone":
            ramp = np.minimum(1.0, np.minimum(ts, end - start - ts) / 0.01)  # 10 ms ramps: no clicks
            out[sel] += 0.35 * ramp * np.sin(2 * math.pi * TONE_HZ * ts)
        else:
            # Speech-like: voiced harmonics of a gliding 120-180 Hz pitch, shaped
            # by two formants, gated by ~4 syllables per second with short pauses.
            f0 = 150 + 30 * np.sin(2 * math.pi * 0.7 * ts)
            phase = 2 * math.pi * np.cumsum(f0) / AUDIO_RATE
            voice = np.zeros_like(ts)
            for k in range(1, 16):
                fk = k * f0
                gain = np.exp(-(((fk - 700) / 250) ** 2)) + 0.6 * np.exp(-(((fk - 1200) / 300) ** 2)) + 0.15
                voice += gain * np.sin(k * phase) / k
            syllable = np.clip(np.sin(2 * math.pi * 4.0 * ts), 0, None) ** 0.6
            edge = np.minimum(1.0, np.minimum(ts, end - start - ts) / 0.02)
            out[sel] += 0.3 * voice / np.max(np.abs(voice)) * syllable * edge
    left = out
    right = out * 0.9  # a little imbalance so a stereo-to-mono mix is not trivially identical
    return np.stack([left, right]).astype(np.float32)


def write_clip(path: Path) -> None:
    """H.264 + AAC MP4, moov atom first (faststart) so it also streams through a pipe."""
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        # threads=1: x264 output is then bit-identical run to run.
        video.options = {"crf": "27", "preset": "medium", "g": "50", "threads": "1"}
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        audio.bit_rate = 96_000

        track = audio_track()
        chunk = 1024
        a_pos = 0
        total = int(DURATION * FPS)
        for index in range(total):
            frame = av.VideoFrame.from_ndarray(video_frame(index), format="bgr24")
            frame.pts = index
            frame.time_base = Fraction(1, FPS)
            for packet in video.encode(frame):
                out.mux(packet)
            # Interleave: audio up to this frame's end time.
            a_end = min(track.shape[1], int((index + 1) / FPS * AUDIO_RATE))
            while a_pos + chunk <= a_end or (index == total - 1 and a_pos < track.shape[1]):
                piece = np.ascontiguousarray(track[:, a_pos : a_pos + chunk])
                aframe = av.AudioFrame.from_ndarray(piece, format="fltp", layout="stereo")
                aframe.sample_rate = AUDIO_RATE
                aframe.pts = a_pos
                aframe.time_base = Fraction(1, AUDIO_RATE)
                for packet in audio.encode(aframe):
                    out.mux(packet)
                a_pos += piece.shape[1]
        for packet in video.encode(None):
            out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)


def still_image() -> np.ndarray:
    """A 800x600 BGR picture: gradient sky, ground, a house, a sun, a tree, a label."""
    h, w = 600, 800
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (235 - 80 * ys).astype(np.uint8)  # blue sky fading down
    img[..., 1] = (200 - 60 * ys).astype(np.uint8)
    img[..., 2] = (140 - 40 * ys).astype(np.uint8)
    img[420:] = (60, 140, 70)  # grass
    cv2.circle(img, (650, 110), 60, (60, 220, 255), -1, cv2.LINE_AA)  # sun
    cv2.rectangle(img, (200, 280), (420, 440), (80, 110, 200), -1, cv2.LINE_AA)  # house
    roof = np.array([(180, 285), (310, 180), (440, 285)], np.int32)
    cv2.fillPoly(img, [roof], (40, 40, 150), cv2.LINE_AA)
    cv2.rectangle(img, (290, 360), (335, 440), (30, 60, 100), -1)  # door
    cv2.rectangle(img, (560, 330), (585, 450), (30, 70, 110), -1)  # trunk
    cv2.circle(img, (572, 300), 55, (40, 120, 40), -1, cv2.LINE_AA)  # crown
    cv2.putText(
        img, "vision-stream", (30, 560), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2, cv2.LINE_AA
    )
    return img


def main() -> None:
    write_clip(HERE / "sample.mp4")
    ok, buf = cv2.imencode(".jpg", still_image(), [cv2.IMWRITE_JPEG_QUALITY, 88])
    assert ok
    (HERE / "still.jpg").write_bytes(buf.tobytes())
    for name in ("sample.mp4", "still.jpg"):
        print(f"{name}: {(HERE / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
