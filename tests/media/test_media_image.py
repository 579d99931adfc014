from __future__ import annotations

import cv2
import numpy as np
import pytest

from vision_stream.errors import InvalidInputError
from vision_stream.media.image import (
    decode_image,
    decode_image_gray_reduced,
    encode_jpeg,
    fit_within,
    jpeg_size,
    jpeg_video_frame,
    probe_image_size,
    resize_bgr,
)


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((1920, 1080), 768, (768, 432)),
        ((1080, 1920), 768, (432, 768)),
        ((640, 360), 768, (640, 360)),  # never upscales
        ((768, 10), 768, (768, 10)),
        ((5000, 1), 100, (100, 1)),  # never collapses to 0
    ],
)
def test_fit_within(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    assert fit_within(*size, max_side) == expected


def test_resize_and_jpeg_bounds(still_jpeg: bytes) -> None:
    bgr = decode_image(still_jpeg)
    assert bgr.shape == (600, 800, 3)
    small = resize_bgr(bgr, 256)
    assert max(small.shape[:2]) == 256 and small.shape[:2] == (192, 256)
    assert resize_bgr(small, 1024) is small
    jpeg = encode_jpeg(small, 80)
    assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9"
    assert probe_image_size(jpeg) == ("jpeg", 256, 192)
    again = decode_image(jpeg)
    assert again.shape == small.shape
    assert np.abs(again.astype(int) - small.astype(int)).mean() < 4  # q80 is close to the source
    assert len(encode_jpeg(small, 30)) < len(jpeg)


def test_decode_png_and_reduced_gray() -> None:
    bgr = np.zeros((64, 96, 3), np.uint8)
    bgr[:, 48:] = 255
    ok, png = cv2.imencode(".png", bgr)
    assert ok
    assert probe_image_size(png.tobytes()) == ("png", 96, 64)
    assert np.array_equal(decode_image(png.tobytes()), bgr)
    gray = decode_image_gray_reduced(encode_jpeg(bgr, 90), 16, 9)
    assert gray.shape == (9, 16)
    assert gray[:, :6].mean() < 30 and gray[:, 10:].mean() > 220


@pytest.mark.parametrize("data", [b"", b"not an image", b"\xff\xd8\xff\xe0garbage", b"\x89PNG\r\n\x1a\n\0"])
def test_undecodable(data: bytes) -> None:
    with pytest.raises(InvalidInputError, match="undecodable image"):
        decode_image(data)
    with pytest.raises(InvalidInputError, match="undecodable image"):
        probe_image_size(data)


def test_progressive_jpeg_header() -> None:
    ok, buf = cv2.imencode(".jpg", np.zeros((10, 30, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    assert probe_image_size(buf.tobytes()) == ("jpeg", 30, 10)


def test_one_header_parser_skips_fill_bytes_and_standalone_markers() -> None:
    jpeg = encode_jpeg(np.zeros((10, 30, 3), np.uint8), 90)
    # Fill bytes before a marker and a stray RST marker between segments (ITU T.81 B.1.1.2).
    padded = jpeg[:2] + b"\xff\xd0" + b"\xff\xff\xff" + jpeg[2:]
    assert probe_image_size(padded) == ("jpeg", 30, 10)
    assert jpeg_size(padded) == (30, 10)
    assert jpeg_size(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()) is None
    assert jpeg_size(b"\xff\xd8\xff\xe0garbage") is None


def test_jpeg_video_frame_verifies_the_body_when_asked(still_jpeg: bytes) -> None:
    sos = still_jpeg.index(b"\xff\xda")
    broken = still_jpeg[: sos + 2] + b"\xff\xff\xff\xff" * 8  # header fine, SOS length destroyed
    lazy = jpeg_video_frame(broken, media_time=0.0)
    assert lazy is not None and (lazy.width, lazy.height) == (800, 600)  # not decoded: not checked
    assert jpeg_video_frame(broken, media_time=0.0, verify=True) is None
    frame = jpeg_video_frame(still_jpeg, media_time=1.5, verify=True)
    assert frame is not None and frame.media_time == 1.5 and not frame.converted
    thumb = frame.thumbnail_gray(64, 36)
    assert np.array_equal(thumb, decode_image_gray_reduced(still_jpeg, 64, 36))
