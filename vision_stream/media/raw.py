"""Raw client pixels (RGB24, BGR24, GRAY8, RGBA, BGRA) to BGR24, with size checks."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InvalidInputError

# bytes per pixel, and the OpenCV conversion to BGR (None: already BGR).
PIXEL_FORMATS: dict[str, tuple[int, int | None]] = {
    "rgb24": (3, cv2.COLOR_RGB2BGR),
    "bgr24": (3, None),
    "gray8": (1, cv2.COLOR_GRAY2BGR),
    "rgba": (4, cv2.COLOR_RGBA2BGR),
    "bgra": (4, cv2.COLOR_BGRA2BGR),
}


def check_raw(data: bytes, width: int, height: int, fmt: str, *, max_pixels: int) -> int:
    """Validate a raw frame's description against its payload; returns bytes per pixel."""
    if fmt not in PIXEL_FORMATS:
        raise InvalidInputError(f"unknown pixel format {fmt!r}; use one of {', '.join(PIXEL_FORMATS)}")
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"raw frame needs width and height > 0, got {width}x{height}")
    if width * height > max_pixels:
        raise InvalidInputError(f"raw frame of {width}x{height} pixels exceeds the limit of {max_pixels}")
    bpp = PIXEL_FORMATS[fmt][0]
    expected = width * height * bpp
    if len(data) != expected:
        raise InvalidInputError(
            f"raw {fmt} frame of {width}x{height} needs {expected} bytes, but the data size is {len(data)}"
        )
    return bpp


def raw_to_bgr(data: bytes, width: int, height: int, fmt: str, *, max_pixels: int) -> np.ndarray:
    """A (height, width, 3) uint8 BGR array for a validated raw frame."""
    bpp = check_raw(data, width, height, fmt, max_pixels=max_pixels)
    pixels = np.frombuffer(data, dtype=np.uint8).reshape((height, width, bpp) if bpp > 1 else (height, width))
    conversion = PIXEL_FORMATS[fmt][1]
    return pixels.copy() if conversion is None else cv2.cvtColor(pixels, conversion)
