"""``describe_jpegs``: the offline analyzer over a list of JPEG pictures.

Used by the Gemini emulators so that their answers are about the frames they
actually received; ``describe_images`` is the same over pixels already decoded
(the local snapshot path, which has them). Pure and synchronous: no clock, no
I/O beyond decoding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

from ..events import Detection
from ..media.image import jpeg_size
from .summary import ActivityLog
from .video import VideoAnalyzer

MAX_SIDE = 768  # px: larger pictures are decoded at a reduced size (analysis works at <= 320)


def decode_jpeg(data: bytes) -> np.ndarray | None:
    """BGR uint8 pixels of an encoded picture (JPEG/PNG/...), or None if it cannot be decoded.

    Pictures much larger than :data:`MAX_SIDE` are decoded at 1/2..1/8 scale by
    the JPEG decoder itself, which is several times faster than a full decode.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        return None
    flag = cv2.IMREAD_COLOR
    width, height = jpeg_size(data) or (0, 0)
    longest = max(width, height)
    for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                            (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if longest >= factor * MAX_SIDE:
            flag = reduced
            break
    try:
        image = cv2.imdecode(buffer, flag)
    except cv2.error:
        return None
    return image


def _frame_label(index: float) -> str:
    return f"frame {int(index) + 1}"


def describe_jpegs(jpegs: Sequence[bytes], *, prompt: str = "") -> tuple[str, list[Detection]]:
    """Describe what a sequence of pictures shows, and what started in it.

    ``jpegs`` are consecutive frames (any encoded format OpenCV reads; order
    matters, timing is unknown so moments are named by frame number, 1-based).
    ``prompt`` is the question asked about them; it is acknowledged, not
    understood: this is a signal analyzer, not a language model.

    Returns a commentary paragraph and the detections (descriptions end with
    the frame they occurred at). Deterministic; about a few ms per 768 px frame.
    """
    images = [decode_jpeg(data) for data in jpegs]
    # Report each picture's own size, not the reduced size it may have been decoded at.
    sizes = [jpeg_size(data) for data in jpegs]
    return describe_images(images, prompt=prompt, sizes=sizes)


def describe_images(images: Sequence[np.ndarray | None], *, prompt: str = "",
                    sizes: Sequence[tuple[int, int] | None] | None = None) -> tuple[str, list[Detection]]:
    """:func:`describe_jpegs` over BGR pixels: ``None`` stands for a picture that
    did not decode; ``sizes`` (width, height) are the pictures' own sizes to
    report (default, or where None: the arrays' sizes)."""
    analyzer = VideoAnalyzer()
    log = ActivityLog()
    detections: list[Detection] = []
    bad = 0
    size = (0, 0)  # (width, height) px of the last decoded picture
    for index, image in enumerate(images):
        if image is None or image.size == 0:
            bad += 1
            continue
        own = sizes[index] if sizes is not None else None
        size = own or (image.shape[1], image.shape[0])
        report = analyzer.process(image, float(index))
        log.add_frame(report)
        for detection in report.detections:
            described = f"{detection.description} ({_frame_label(index)})"
            detections.append(dataclasses.replace(detection, description=described))
    good = len(images) - bad
    if good == 0:
        text = "I received no picture I could decode." if images else "I received no pictures."
    else:
        heading = "one picture" if good == 1 else f"{good} pictures"
        if good == 1 and log.colours is not None:
            shares = ", ".join(f"{name} {share * 100:.0f}%" for name, share in log.colours.colours)
            text = (f"In {heading} ({size[0]}x{size[1]}): {log.colours.phrase()} (colours: {shares}; "
                    f"mean brightness {log.colours.luma:.0f} of 255).")
            text += "".join(f" It looks {d.label}." for d in detections if d.label.endswith("exposed"))
        else:
            text = f"Across {heading}: " + log.phrase(when=_frame_label)
    if bad:
        text += f" ({bad} of {len(images)} could not be decoded.)"
    if prompt.strip():
        text = (f'On "{_clip(prompt)}": I am an offline signal analyzer, not a language model, so I can only '
                f"report what the pixels show. {text}")
    return text, detections


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
