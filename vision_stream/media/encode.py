"""Pure image functions: fit, resize, JPEG encode, decode.

No state, no I/O: callers run them wherever CPU work belongs (a worker thread
or an executor), never on the event loop.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InvalidInputError

__all__ = [
    "decode_image",
    "decode_image_gray_reduced",
    "encode_jpeg",
    "fit_within",
    "resize_bgr",
]


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size (pixels) of a ``width`` x ``height`` picture scaled so its longest
    side is at most ``max_side``; never upscales, keeps the aspect ratio, at least 1."""
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be positive, got {width}x{height}")
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_bgr(bgr: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale a BGR (H, W, 3) uint8 array so its longest side is <= ``max_side`` pixels.

    INTER_AREA because it averages source pixels (no aliasing on big reductions);
    returns the input itself when it already fits (never upscales).
    """
    height, width = bgr.shape[:2]
    new_w, new_h = fit_within(width, height, max_side)
    if (new_w, new_h) == (width, height):
        return bgr
    return cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_AREA)


def encode_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG bytes of a BGR (or gray) uint8 array at ``quality`` 1..100."""
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on impossible shapes/dtypes
        raise ValueError(f"JPEG encoding failed for array of shape {bgr.shape}")
    return buf.tobytes()


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG (anything OpenCV reads) to a BGR (H, W, 3) uint8 array.

    Raises InvalidInputError("undecodable image") when the bytes are not a
    picture OpenCV can decode.
    """
    arr = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(arr, cv2.IMREAD_COLOR) if arr.size else None
    if image is None:
        raise InvalidInputError("undecodable image")
    return image


def decode_image_gray_reduced(data: bytes, width: int, height: int) -> np.ndarray:
    """A small (height, width) grayscale picture, cheaply: libjpeg decodes at 1/8
    scale (DCT scaling), so a scene-change probe costs a fraction of a full decode."""
    arr = np.frombuffer(data, dtype=np.uint8)
    gray = cv2.imdecode(arr, cv2.IMREAD_REDUCED_GRAYSCALE_8) if arr.size else None
    if gray is None:
        raise InvalidInputError("undecodable image")
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
