"""The one SampledFrame factory of the tests: a BGR picture encoded to JPEG with cv2, as the sampler hands it on."""

from __future__ import annotations

import cv2
import numpy as np

from vision_stream.media.types import SampledFrame


def sampled_frame(pixels: np.ndarray, media_time: float, *, index: int = 0, reason: str = "cadence",
                  quality: int = 80, decoded: bool = False) -> SampledFrame:
    """``pixels`` as a sampled frame with its JPEG.

    ``decoded=True`` keeps the pixels decoded back from the JPEG, as the real sampler
    does (analyzers then see the same compression artefacts); otherwise the originals.
    """
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    kept = cv2.imdecode(jpeg, cv2.IMREAD_COLOR) if decoded else pixels
    return SampledFrame(media_time=media_time, jpeg=jpeg.tobytes(), width=pixels.shape[1],
                        height=pixels.shape[0], pixels=kept, reason=reason, index=index)


def flat(colour: tuple[int, int, int] = (40, 120, 200), *, size: tuple[int, int] = (320, 180),
         square_at: int | None = None) -> np.ndarray:
    """A flat-colour BGR picture, with a white 60 px square at x=``square_at`` when given."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:] = colour
    if square_at is not None:
        pixels[60:120, square_at : square_at + 60] = 255
    return pixels


def flat_frame(media_time: float, colour: tuple[int, int, int] = (40, 120, 200), *, index: int = 0,
               reason: str = "cadence", square_at: int | None = None) -> SampledFrame:
    """A 320x180 :func:`flat` picture as a sampled frame (JPEG quality 85): the REST tests' frame."""
    return sampled_frame(flat(colour, square_at=square_at), media_time, index=index, reason=reason, quality=85)
