"""Pictures: probe a header, decode (full or reduced scale), fit, resize, encode JPEG.

One header parser (:func:`probe_image_size`) serves every caller: pushed
frames and snapshots (checked against the pixel cap before decoding), MJPEG
camera parts and the offline describer. :func:`jpeg_video_frame` is the one
JPEG-to-:class:`~vision_stream.media.types.VideoFrame` path: lazy, with probe
thumbnails decoded at 1/2-1/8 scale by libjpeg's DCT scaling.

No state, no I/O: callers run the decoders wherever CPU work belongs (a worker
thread or an executor), never on the event loop; the header probe takes
microseconds and may run on the loop.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import DecodeError, InvalidInputError
from .types import VideoFrame

__all__ = [
    "decode_image",
    "decode_image_gray_reduced",
    "encode_jpeg",
    "fit_within",
    "jpeg_size",
    "jpeg_video_frame",
    "probe_image_size",
    "resize_bgr",
]

# libjpeg decodes at 1/8, 1/4 or 1/2 scale in the DCT (IMREAD_REDUCED_*):
# entropy decoding is still paid, the inverse DCT and colour work shrink.
_REDUCED_GRAY = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                 (2, cv2.IMREAD_REDUCED_GRAYSCALE_2))


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


def decode_image_gray_reduced(data: bytes, width: int, height: int, *,
                              size: tuple[int, int] | None = None) -> np.ndarray:
    """A small (height, width) grayscale picture, cheaply: libjpeg decodes at the
    largest of 1/8, 1/4, 1/2 scale that still covers ``width`` x ``height``
    (``size``: the picture's own (width, height), read from its header when
    None), so a scene-change probe costs a fraction of a full decode."""
    flag = _gray_flag(size or jpeg_size(data) or (0, 0), width, height)
    gray = _decode_gray(np.frombuffer(data, dtype=np.uint8), flag)
    if gray is None:
        raise InvalidInputError("undecodable image")
    return cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)


def _gray_flag(size: tuple[int, int], width: int, height: int) -> int:
    factor = min(size[0] // max(width, 1), size[1] // max(height, 1))
    return next((flag for f, flag in _REDUCED_GRAY if factor >= f), cv2.IMREAD_GRAYSCALE)


def _decode_gray(buf: np.ndarray, flag: int) -> np.ndarray | None:
    return cv2.imdecode(buf, flag) if buf.size else None


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


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG from its frame header; None when ``data`` is not
    a JPEG with a readable, non-empty one (:func:`probe_image_size`, not raising)."""
    try:
        kind, width, height = probe_image_size(data)
    except InvalidInputError:
        return None
    return (width, height) if kind == "jpeg" and width > 0 and height > 0 else None


def jpeg_video_frame(data: bytes, *, media_time: float, verify: bool = False) -> VideoFrame | None:
    """A lazy VideoFrame for JPEG bytes; None when the header is unreadable.

    Nothing is decoded until the frame is probed (a gray thumbnail, decoded
    at reduced scale) or sampled (full size). ``verify``: decode the body now
    at 1/8 scale in gray (about a third of a full decode at 720p), and return
    None when it does not decode; the first probe thumbnail at that scale
    reuses it. Pushed pictures are verified so a bad body is a bad packet at
    the source, not a failure in the sampler. Decoders raise
    :class:`~vision_stream.errors.DecodeError` when the body turns out bad later.
    """
    size = jpeg_size(data)
    if size is None:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    eighth: list[np.ndarray] = []  # the 1/8-scale gray picture decoded by ``verify``
    if verify:
        reduced = _decode_gray(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if reduced is None:
            return None
        eighth.append(reduced)

    def load() -> np.ndarray:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if img is None:
            raise DecodeError("JPEG frame does not decode")
        return img

    def gray(width: int, height: int) -> np.ndarray:
        flag = _gray_flag(size, width, height)
        img = eighth.pop() if eighth and flag == cv2.IMREAD_REDUCED_GRAYSCALE_8 else _decode_gray(buf, flag)
        if img is None:
            raise DecodeError("JPEG frame does not decode")
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)

    return VideoFrame(media_time=media_time, width=size[0], height=size[1], loader=load, gray_loader=gray,
                      keyframe=True)
