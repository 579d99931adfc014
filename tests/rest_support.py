"""Helpers and fixtures for the tests that use the REST emulator (REST backend, failover,
snapshot RPC, CLI): real loopback servers, real frames."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision_stream.media.types import SampledFrame
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestKnobs

API_KEY = "AIzaTEST-rest-key-0123456789"


def make_frame(media_time: float, colour: tuple[int, int, int] = (40, 120, 200), *, index: int = 0,
               reason: str = "cadence", square_at: int | None = None) -> SampledFrame:
    """A 320x180 BGR picture (flat colour, optional white square) as a sampled frame with its JPEG."""
    pixels = np.zeros((180, 320, 3), np.uint8)
    pixels[:] = colour
    if square_at is not None:
        pixels[60:120, square_at:square_at + 60] = 255
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return SampledFrame(media_time=media_time, jpeg=jpeg.tobytes(), width=320, height=180, pixels=pixels,
                        reason=reason, index=index)


@pytest.fixture
async def rest_emulator() -> AsyncIterator[RestEmulator]:
    async with RestEmulator(RestKnobs(api_keys=(API_KEY,))) as emulator:
        yield emulator


def make_clip(path: Path, seconds: float = 4.0, fps: int = 10) -> Path:
    """A small H.264 clip: a square moving right on grey, a hard cut to blue at half time."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(int(seconds * fps)):
            t = i / fps
            img = np.full((240, 320, 3), 90 if t < seconds / 2 else 30, np.uint8)
            if t >= seconds / 2:
                img[:, :, 0] = 200
            x = 10 + i * 8
            img[100:140, x % 280: x % 280 + 40] = (0, 220, 255)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("failover") / "clip.mp4")
