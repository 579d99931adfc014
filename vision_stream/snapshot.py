"""One image in, one analysis out (the AnalyzeSnapshot RPC and ``vision-stream snapshot``).

The picture is checked (header first), decoded and fitted to the sampling
policy's ``max_side`` once; the offline analyzer takes those pixels as they
are, and only the REST models get them encoded as a JPEG.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from .backends.factory import BackendOptions, resolve_name
from .config import Limits, SamplingPolicy
from .errors import InvalidInputError, LimitExceededError, UsageError
from .events import Detection
from .media.image import decode_image, encode_jpeg, probe_image_size, resize_bgr
from .media.raw import raw_to_bgr


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    text: str
    detections: list[Detection]
    backend: str
    model: str = ""


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_frame_pixels:
        raise LimitExceededError(
            f"image: {width}x{height} is over the limit of {limits.max_frame_pixels} pixels"
        )


def prepare_pixels(data: bytes, *, raw: tuple[str, int, int] | None, sampling: SamplingPolicy,
                   limits: Limits) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode (or wrap raw pixels) and bound the size as for streams: BGR pixels
    whose longest side is at most ``sampling.max_side``, and the picture's own
    (width, height), which is what a user means by the image's size (the
    analysis reports it, not the resized one).

    The size is checked on the image's own header before anything is decoded
    (a 272 KiB PNG can say 16000x16000: decoding it first would take 0.8 GB),
    and once more on the decoded picture (OpenCV reads the first frame header;
    a JPEG may carry another)."""
    if not data:
        raise InvalidInputError("image.data is empty")
    if raw is not None:
        fmt, width, height = raw
        _check_pixels(width, height, limits)
        bgr = raw_to_bgr(data, width, height, fmt)
    else:
        try:
            _kind, width, height = probe_image_size(data)
        except InvalidInputError as exc:
            raise InvalidInputError(f"image.data: {exc.message}") from None
        _check_pixels(width, height, limits)
        bgr = decode_image(data)
    _check_pixels(bgr.shape[1], bgr.shape[0], limits)
    small: np.ndarray = resize_bgr(bgr, sampling.max_side)
    return small, (bgr.shape[1], bgr.shape[0])


async def analyze_snapshot(
    data: bytes, *, raw: tuple[str, int, int] | None = None, prompt: str = "", backend: str = "auto",
    model: str = "", options: BackendOptions, sampling: SamplingPolicy, limits: Limits,
) -> SnapshotResult:
    if backend not in ("auto", "rest", "local"):
        raise UsageError(f"snapshot backend must be auto, rest or local, got {backend!r}")
    # A snapshot has no live path: with a key, "auto" means the REST models.
    name = "local" if resolve_name(backend, options) == "local" else "rest"
    if name == "rest" and not options.api_key:
        raise UsageError("snapshot backend 'rest' needs an API key (set GEMINI_API_KEY or GOOGLE_API_KEY)")
    pixels, size = await asyncio.to_thread(prepare_pixels, data, raw=raw, sampling=sampling, limits=limits)
    if name == "local":
        from .analysis.describe import describe_images

        # The analyzer works on pixels: no JPEG encode and decode in between.
        text, detections = await asyncio.to_thread(describe_images, [pixels], prompt=prompt, sizes=[size])
        return SnapshotResult(text=text, detections=list(detections), backend="local")
    jpeg = await asyncio.to_thread(encode_jpeg, pixels, sampling.jpeg_quality)
    from .backends.factory import make_rest_backend
    from .backends.gemini_api import bare_model_id

    rest = make_rest_backend(options)
    chosen = model or options.snapshot_model
    reply = await rest.analyze([jpeg], prompt, model=chosen)
    model_id = bare_model_id(chosen)
    if reply.blocked:
        # A safety block is an answer, not a failure (issue 4): say so plainly.
        return SnapshotResult(text=f"[blocked] {reply.block_message()}", detections=[], backend="rest",
                              model=model_id)
    return SnapshotResult(text=reply.text.strip(), detections=[], backend="rest", model=model_id)
