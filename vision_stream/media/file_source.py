"""A media file (an allowed container: MP4, MKV, WebM, AVI, MPEG-TS, MJPEG, ...) as a MediaSource."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import av
import av.container

from ..config import AudioPolicy
from ..errors import InvalidInputError, NotFoundError, VisionStreamError
from .demux import ContainerDecoder, PacketSink, open_container
from .types import MediaItem

__all__ = ["GOP_SCAN_SECONDS", "FileSource", "scan_keyframe_gap"]

# Media seconds of video packets demuxed on open to learn the GOP (keyframe mode).
GOP_SCAN_SECONDS = 30.0


class FileSource:
    """Decode a file's first video and first audio stream, in media-time order.

    The container is opened on construction, so a missing file raises
    NotFoundError and an unreadable one SourceOpenError right away (before a
    session starts). ``items()`` yields lazy VideoFrames, AudioChunks already in
    the session format (``audio`` policy) and BadPackets for corrupt data.

    ``loop=True`` starts over at the end of the file; media time keeps growing
    across passes (pass *n* starts where pass *n-1* ended). ``audio=None``
    skips the audio stream entirely (``vision-stream frames``).
    ``keyframes_only`` decodes only key frames.

    ``sample_interval`` (seconds between the frames the consumer samples, i.e.
    ``1 / SamplingPolicy.fps``) turns keyframe-only decoding on automatically
    when the file allows it: the video packets of the first
    ``GOP_SCAN_SECONDS`` are demuxed (not decoded) on open, and if no keyframe
    is further than ``sample_interval`` (plus half a frame) from the previous
    one, only keyframes are decoded: a 1 s GOP sampled at 1 fps then costs
    ~1/30 of a full decode. The trade-off: the sampler only sees keyframes,
    so cadence samples land on keyframes (at most one GOP late, exactly on the
    slot for a fixed 1 s GOP) and scene changes are probed once per keyframe
    instead of ``probe_fps`` times a second (a cut inside a GOP is seen at the
    next keyframe, at most ``sample_interval`` late; encoders usually start a
    GOP at a cut anyway). The choice depends on the file alone, so paced and
    ``--fast`` replays make identical decisions. If the GOP later grows past
    the limit, decoding falls back to every frame from that keyframe on
    (``keyframe_fallbacks`` counts it). ``keyframe_mode`` tells what was chosen.

    ``max_pixels``: every decoded frame is held to it (LimitExceededError).
    The file is opened confined to the allowed container formats
    (:mod:`~vision_stream.media.confine`).

    ``close()`` may be called from any thread; ``items()`` then ends after the
    packet in progress.
    """

    live = False

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        audio: AudioPolicy | None,
        loop: bool = False,
        keyframes_only: bool = False,
        sample_interval: float | None = None,
        max_pixels: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_pixels = max_pixels
        self.description = self.path.name
        self.audio = audio
        self.loop = loop
        self.keyframes_only = keyframes_only
        if not self.path.is_file():
            if self.path.is_dir():
                raise InvalidInputError(f"{self.description} is a directory: give a media file in it")
            raise NotFoundError(f"media file not found: {self.description}")
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _container hand-over between threads
        self._container: av.container.InputContainer | None = self._open()
        self.passes = 0  # completed passes over the file
        self.bad_packets = 0
        self.keyframe_fallbacks = 0
        self._max_gap: float | None = None  # keyframe-mode guard, seconds
        self.keyframe_mode = keyframes_only
        # A session's evidence (pipeline/packet_ring.py): set before items() runs.
        self.packet_sink: PacketSink | None = None
        if not keyframes_only and sample_interval is not None:
            gap, frame_duration = scan_keyframe_gap(self.path)
            limit = sample_interval + frame_duration / 2  # float/rounded timestamps slack
            if gap is not None and gap <= limit:
                self.keyframe_mode = True
                self._max_gap = limit

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
                    keyframes_only=self.keyframe_mode,
                    max_keyframe_gap=self._max_gap,
                    max_pixels=self.max_pixels,
                    packet_sink=self.packet_sink,
                )
                try:
                    yield from decoder.items()
                finally:
                    self.bad_packets += decoder.bad_packets
                    self.keyframe_fallbacks += int(decoder.keyframe_fallback)
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
        return f"FileSource({self.description!r}, loop={self.loop}, keyframe_mode={self.keyframe_mode})"


def scan_keyframe_gap(path: Path, seconds: float = GOP_SCAN_SECONDS) -> tuple[float | None, float]:
    """Demux (no decoding) up to ``seconds`` of ``path``'s video packets.

    Returns (the longest distance between consecutive keyframes in seconds,
    or None when fewer than two keyframes were seen or the file has no video;
    the nominal frame duration in seconds). Demuxing costs a small fraction
    of decoding: milliseconds for 30 s of 1080p.
    """
    try:
        container = open_container(str(path), description=path.name)
    except VisionStreamError:
        return None, 0.0
    try:
        if not container.streams.video:
            return None, 0.0
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frame_duration = 1.0 / float(rate) if rate else 0.04
        first: float | None = None
        last_key: float | None = None
        gap: float | None = None
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0 or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            first = t if first is None else first
            if packet.is_keyframe:
                if last_key is not None:
                    gap = max(gap or 0.0, t - last_key)
                last_key = t
            if t - first > seconds:
                if last_key is not None:  # a long GOP still open at the end of the scan counts too
                    gap = max(gap or 0.0, t - last_key)
                break
        return gap, frame_duration
    except av.error.FFmpegError:
        return None, 0.0
    finally:
        container.close()
