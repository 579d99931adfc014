"""Baseline A: the cookbook approach (OpenCV reads every frame, Pillow resizes and encodes).

This is what the Gemini API cookbook's Live examples do per frame
(``cap.read()``, ``cv2.cvtColor(BGR2RGB)``, ``PIL.Image.thumbnail``, JPEG),
applied to a file at one frame per second of video. Every frame is read
(decoded and converted to BGR by OpenCV) because that is how the loop is
written; only every ``fps``-th one is kept.

Run as ``python -m bench.baselines.opencv_pillow IN OUT_DIR [MAX_SIDE QUALITY]``;
prints ``{"cpu": seconds}``: CPU spent after the imports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
from PIL import Image

from bench.common import cpu_seconds_self


def export(path: str, out_dir: Path, *, max_side: int = 768, quality: int = 80, fps: float = 1.0) -> int:
    """Write one JPEG per ``1/fps`` seconds of video; returns the count."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {path}")
    step = max(1, round((cap.get(cv2.CAP_PROP_FPS) or 30.0) / fps))
    index = written = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                image.thumbnail((max_side, max_side))
                image.save(out_dir / f"{written:05d}.jpg", format="JPEG", quality=quality)
                written += 1
            index += 1
    finally:
        cap.release()
    return written


def main(argv: list[str]) -> None:
    src, out = argv[0], Path(argv[1])
    max_side = int(argv[2]) if len(argv) > 2 else 768
    quality = int(argv[3]) if len(argv) > 3 else 80
    out.mkdir(parents=True, exist_ok=True)
    start = cpu_seconds_self()
    count = export(src, out, max_side=max_side, quality=quality)
    print(json.dumps({"cpu": cpu_seconds_self() - start, "frames": count}))


if __name__ == "__main__":
    main(sys.argv[1:])
