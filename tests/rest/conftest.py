"""Fixtures for the REST backend and failover tests: real loopback servers, real frames."""

from __future__ import annotations

from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from vision_stream.media.types import SampledFrame
from vision_stream.testing.rest_emulator import RestEmulator, RestKnobs

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
