"""A media file (anything FFmpeg demuxes: MP4, MKV, WebM, AVI, MPEG-TS, MJPEG) as a MediaSource."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import av.container

from ..config import AudioPolicy
from ..errors import NotFoundError
from .demux import ContainerDecoder, open_container
from .types import MediaItem

__all__ = ["FileSource"]


class FileSource:
    """Decode a file's first video and first audio stream, in media-time order.

    The container is opened on construction, so a missing file raises
    NotFoundError and an unreadable one SourceOpenError right away (before a
    session starts). ``items()`` yields lazy VideoFrames, AudioChunks already in
    the session format (``audio`` policy) and BadPackets for corrupt data.

    ``loop=True`` starts over at the end of the file; media time keeps growing
    across passes (pass *n* starts where pass *n-1* ended). ``keyframes_only``
    decodes only key frames (a benchmark/CPU-saving option for sampling
    intervals longer than the GOP). ``close()`` may be called from any thread;
    ``items()`` then ends after the packet in progress.
    """

    live = False

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        audio: AudioPolicy,
        loop: bool = False,
        keyframes_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.description = self.path.name
        self.audio = audio
        self.loop = loop
        self.keyframes_only = keyframes_only
        if not self.path.is_file():
            raise NotFoundError(f"media file not found: {self.description}")
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _container hand-over between threads
        self._container: av.container.InputContainer | None = self._open()
        self.passes = 0  # completed passes over the file
        self.bad_packets = 0

    def _open(self) -> av.container.InputContainer:
        return open_container(str(self.path), description=self.description)

    def items(self) -> Iterator[MediaItem]:
        """Blocking iterator of media items; run it in a worker thread."""
        offset = 0.0
        with self._lock:
            container, self._container = self._container, None
        try:
            while not self._stop.is_set():
                if container is None:
                    container = self._open()
                decoder = ContainerDecoder(
                    container,
                    audio=self.audio,
                    should_stop=self._stop.is_set,
                    time_offset=offset,
                    keyframes_only=self.keyframes_only,
                )
                try:
                    yield from decoder.items()
                finally:
                    self.bad_packets += decoder.bad_packets
                    container.close()
                    container = None
                if self._stop.is_set():
                    break
                self.passes += 1
                if not self.loop or decoder.end_time <= offset:
                    break  # not looping, or an empty pass (looping it would spin)
                offset = decoder.end_time
        finally:
            if container is not None:
                container.close()

    def close(self) -> None:
        """Stop producing; safe from any thread. items() ends promptly."""
        self._stop.set()
        with self._lock:
            container, self._container = self._container, None
        if container is not None:  # never iterated: release the file now
            container.close()

    def __repr__(self) -> str:
        return f"FileSource({self.description!r}, loop={self.loop})"
