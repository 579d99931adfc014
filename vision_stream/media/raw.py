"""Raw client pixels (RGB24, BGR24, GRAY8, RGBA, BGRA): validation and conversion.

Error messages name the API fields (``frame.format``, ``frame.data``, ...), so
the gRPC status a client gets says exactly what to fix.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from ..errors import InvalidInputError


class PixelFormat(NamedTuple):
    bytes_per_pixel: int
    to_bgr: int | None  # OpenCV conversion code (None: already BGR)
    to_gray: int | None  # OpenCV conversion code (None: already gray)


PIXEL_FORMATS: dict[str, PixelFormat] = {
    "rgb24": PixelFormat(3, cv2.COLOR_RGB2BGR, cv2.COLOR_RGB2GRAY),
    "bgr24": PixelFormat(3, None, cv2.COLOR_BGR2GRAY),
    "gray8": PixelFormat(1, cv2.COLOR_GRAY2BGR, None),
    "rgba": PixelFormat(4, cv2.COLOR_RGBA2BGR, cv2.COLOR_RGBA2GRAY),
    "bgra": PixelFormat(4, cv2.COLOR_BGRA2BGR, cv2.COLOR_BGRA2GRAY),
}


def check_raw(data: bytes, width: int, height: int, fmt: str) -> PixelFormat:
    """Validate a raw frame's description against its payload (rows packed, no padding)."""
    if fmt not in PIXEL_FORMATS:
        raise InvalidInputError(f"frame.format: unknown pixel format {fmt!r}")
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"frame.width/frame.height must be > 0 for raw pixels, got {width}x{height}")
    spec = PIXEL_FORMATS[fmt]
    expected = width * height * spec.bytes_per_pixel
    if len(data) != expected:
        raise InvalidInputError(
            f"frame.data: {len(data)} bytes, expected {expected} "
            f"for {width}x{height} {fmt} ({spec.bytes_per_pixel} bytes per pixel)"
        )
    return spec


def raw_view(data: bytes, width: int, height: int, fmt: str) -> np.ndarray:
    """A zero-copy (height, width[, channels]) uint8 view of validated raw pixels."""
    bpp = PIXEL_FORMATS[fmt].bytes_per_pixel
    shape = (height, width) if bpp == 1 else (height, width, bpp)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def to_bgr(pixels: np.ndarray, fmt: str) -> np.ndarray:
    """A BGR24 copy of a raw view."""
    code = PIXEL_FORMATS[fmt].to_bgr
    return pixels.copy() if code is None else cv2.cvtColor(pixels, code)


def to_gray(pixels: np.ndarray, fmt: str) -> np.ndarray:
    code = PIXEL_FORMATS[fmt].to_gray
    return pixels if code is None else cv2.cvtColor(pixels, code)


def raw_to_bgr(data: bytes, width: int, height: int, fmt: str) -> np.ndarray:
    """Validate, then convert to a (height, width, 3) uint8 BGR array."""
    check_raw(data, width, height, fmt)
    return to_bgr(raw_view(data, width, height, fmt), fmt)
