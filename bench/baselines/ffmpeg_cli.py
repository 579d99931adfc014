"""Baselines B and C: Debian's ``ffmpeg`` command line.

B is what most people run: ``ffmpeg -i IN -vf fps=1,scale=768:-2 OUT/%05d.jpg``
(decode every frame, keep one a second, scale it). C adds ``-skip_frame nokey``
before the input so the decoder only decodes keyframes: the practical floor for
a 1 s GOP, where keyframes alone give one frame a second.

FFmpeg's MJPEG encoder takes ``-q:v`` (2 best .. 31 worst) rather than a
libjpeg quality; ``QSCALE`` was picked so the mean JPEG size is close to
libjpeg quality 80 (the sizes are printed next to every result).
"""

from __future__ import annotations

import shutil
from pathlib import Path

QSCALE = 4


def available() -> bool:
    """True when an ``ffmpeg`` executable is on PATH."""
    return shutil.which("ffmpeg") is not None


def command(src: Path, out_dir: Path, *, keyframes_only: bool, max_side: int = 768, fps: float = 1.0) -> list[str]:
    """The argv for baseline B (``keyframes_only=False``) or C (True). Landscape
    inputs only (``scale=W:-2`` fixes the width, as users write it)."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    if keyframes_only:
        argv += ["-skip_frame", "nokey"]
    argv += ["-i", str(src), "-vf", f"fps={fps:g},scale={max_side}:-2", "-q:v", str(QSCALE),
             str(out_dir / "%05d.jpg")]
    return argv
