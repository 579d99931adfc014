"""Fixtures of the browser tests: a server with its HTTP side, and Chromium's fake devices.

``--use-file-for-fake-video-capture`` reads Y4M (4:2:0) or MJPEG and loops it;
``--use-file-for-fake-audio-capture`` reads a WAV and loops it. Both are made here at test
time from real footage in ``../shared/media`` with PyAV and the standard library (no FFmpeg CLI).
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path

import av
import pytest
from helpers.server import Served, serve, write_tokens

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.auth import load_tokens
from vision_stream.server.service import ServiceConfig


def make_y4m(src: Path, dst: Path, *, start: float = 0.0, seconds: float = 4.0, fps: int = 10,
             width: int = 320) -> Path:
    """``seconds`` of ``src`` from ``start`` as raw 4:2:0 Y4M at ``fps``, scaled to ``width`` (even height)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="yuv4mpegpipe") as out:
        video = inp.streams.video[0]
        height = round(video.height * width / video.width / 2) * 2
        stream = out.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        written = 0
        for frame in inp.decode(video):
            # Resample the source rate to ``fps`` by media time: keep frame k once t >= k / fps.
            if frame.time is None or frame.time < start + written / fps:
                continue
            if written >= seconds * fps:
                break
            picture = frame.reformat(width=width, height=height, format="yuv420p")
            picture.pts = written
            picture.time_base = stream.time_base
            out.mux(stream.encode(picture))
            written += 1
        out.mux(stream.encode(None))
    if written == 0:
        raise ValueError(f"{src.name}: no video frames decoded")
    return dst


def make_wav(raw_s16le_mono: Path, dst: Path, *, rate: int = 16000, seconds: float = 4.0) -> Path:
    """The first ``seconds`` of raw mono PCM16 LE as a WAV file."""
    pcm = raw_s16le_mono.read_bytes()[: int(rate * seconds) * 2]
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return dst


@pytest.fixture
async def http_served(media_root: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    """A real server (offline backend: no key in the environment) with its HTTP side on a free loopback port."""
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))
    async for s in serve(config, media_root, http_port=0):
        yield s


@pytest.fixture
async def token_served(media_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[tuple[Served, str]]:
    """As ``http_served`` with --auth-tokens; yields the server and the token of a user who may
    push, subscribe and manage."""
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    tokens = write_tokens(tmp_path / "tokens.toml", {"alice": ["push", "subscribe", "manage"]})
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))
    async for s in serve(config, media_root, http_port=0, tokens=load_tokens(tmp_path / "tokens.toml")):
        yield s, tokens["alice"]


@pytest.fixture
def fake_devices(shared_media: Path, tmp_path: Path) -> list[str]:
    # 5 s to 10 s of the clip: cars drive through (before and after, the road is empty).
    cam = make_y4m(shared_media / "intel_car-detection.mp4", tmp_path / "cam.y4m", start=5.0, seconds=5.0, fps=10)
    mic = make_wav(shared_media / "tau_speech_16khz_mono_s16le.raw", tmp_path / "a.wav", seconds=4.0)
    return [f"--use-file-for-fake-video-capture={cam}", f"--use-file-for-fake-audio-capture={mic}"]
