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
    "probe_image_size",
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


# JPEG start-of-frame markers carrying the picture size: SOF0..SOF15 except
# DHT (C4), JPG (C8) and DAC (CC), per ITU T.81 table B.1.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def probe_image_size(data: bytes) -> tuple[str, int, int]:
    """Read ``(kind, width, height)`` from a JPEG or PNG header without decoding pixels.

    Microseconds of pure-Python header parsing, so it can run on the event loop
    to reject garbage synchronously. ``kind`` is "jpeg" or "png". Raises
    InvalidInputError when the bytes are neither, or the header is truncated.
    """
    if data.startswith(_PNG_SIGNATURE):
        # The IHDR chunk must come first: length(4) "IHDR" width(4) height(4).
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise InvalidInputError("undecodable image: truncated PNG header")
        return "png", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        pos = 2
        end = len(data)
        while pos + 4 <= end:
            if data[pos] != 0xFF:
                raise InvalidInputError("undecodable image: corrupt JPEG marker stream")
            marker = data[pos + 1]
            if marker == 0xFF:  # fill byte before a marker
                pos += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD8)):  # standalone markers: no length field
                pos += 2
                continue
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker in _JPEG_SOF:
                if pos + 9 > end:
                    break
                height = int.from_bytes(data[pos + 5 : pos + 7], "big")
                width = int.from_bytes(data[pos + 7 : pos + 9], "big")
                return "jpeg", width, height
            if marker in (0xD9, 0xDA) or length < 2:  # EOI/SOS before any frame header
                break
            pos += 2 + length
        raise InvalidInputError("undecodable image: no JPEG frame header")
    raise InvalidInputError("undecodable image: not a JPEG or PNG")
