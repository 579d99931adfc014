"""``vision-stream frames``: write exactly the JPEGs a session would send to the model.

Names are ``{index:05d}_{media_time:09.3f}s_{reason}.jpg``: the order, the
media time a session's events print for that frame, and the reason (cadence
or scene change) are visible in a file listing. The media time is the
session's: a file's clock starts at its earliest selected stream, audio
included, even though only video is decoded here (a clip whose video starts
0.85 s after its audio names its first frame ``..._00000.850s_...``, as the
events say).

The output folder must be new or empty, so a listing never mixes two runs;
``overwrite=True`` first deletes the JPEGs an earlier export wrote there
(names of the form above) and nothing else.

:class:`FrameExport` runs in a worker thread and is stopped from another
(Ctrl-C): ``close()`` closes the source, which interrupts a camera's blocked
read (see :class:`~vision_stream.media.reconnecting.ReconnectingSource`).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from ..config import SamplingPolicy
from ..errors import UsageError
from .open import open_source
from .sampler import FrameSampler
from .types import MediaSource, VideoFrame

__all__ = ["EXPORT_NAME", "FrameExport", "prepare_out_dir"]

# A file this module writes (and the only kind ``overwrite`` deletes).
EXPORT_NAME = re.compile(r"\d{5,}_\d{5,}\.\d{3}s_[a-z]+\.jpg")


def prepare_out_dir(out_dir: Path, *, overwrite: bool) -> None:
    """Create ``out_dir``, or check it holds nothing (``overwrite``: no earlier export).

    Raises UsageError naming the folder: a run must not mix its JPEGs with
    another's, and ``overwrite`` never deletes a file this module did not name.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file, not a folder")
    if not out_dir.exists():
        out_dir.mkdir(parents=True)
        return
    if overwrite:
        for path in out_dir.iterdir():
            if path.is_file() and EXPORT_NAME.fullmatch(path.name):
                path.unlink()
        return
    if any(out_dir.iterdir()):
        raise UsageError(f"--out {out_dir} is not empty: choose a new folder, or add --overwrite "
                         f"to replace the JPEGs an earlier 'frames' run wrote there")


class FrameExport:
    """One export: ``run()`` (blocking, in a worker thread) checks the folder
    (:func:`prepare_out_dir`), samples and writes; ``close()`` stops it from
    any thread (``interrupted`` then tells)."""

    def __init__(self, source: str, out_dir: Path, sampling: SamplingPolicy, *, overwrite: bool = False) -> None:
        self.source = source
        self.out_dir = out_dir
        self.sampling = sampling
        self.overwrite = overwrite
        self.count = 0  # JPEGs written so far
        self.interrupted = False
        self._lock = threading.Lock()  # guards _media between run() and close()
        self._media: MediaSource | None = None

    def run(self) -> int:
        """Sample ``source`` as a ``--fast`` session would and write each JPEG; returns the count."""
        prepare_out_dir(self.out_dir, overwrite=self.overwrite)
        # Video only (the audio is not even demuxed), and keyframes only when the
        # file's GOP fits the sampling interval: exactly what a --fast session samples.
        media = open_source(self.source, audio=None, sample_interval=1.0 / self.sampling.fps)
        with self._lock:
            self._media = media
        try:
            if not self.interrupted:  # close() may have come while the source opened
                self._write(media)
        finally:
            media.close()
        return self.count

    def _write(self, media: MediaSource) -> None:
        sampler = FrameSampler(self.sampling)
        for item in media.items():
            if self.interrupted:
                return
            if not isinstance(item, VideoFrame):
                continue
            sampled = sampler.offer(item)
            if sampled is None:
                continue
            name = f"{sampled.index:05d}_{sampled.media_time:09.3f}s_{sampled.reason}.jpg"
            (self.out_dir / name).write_bytes(sampled.jpeg)
            self.count += 1

    def close(self) -> None:
        """Stop from any thread: ``run()`` returns after the item in progress."""
        self.interrupted = True
        with self._lock:
            media = self._media
        if media is not None:
            media.close()

