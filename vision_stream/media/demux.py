"""Demux and decode one FFmpeg container (file or pushed byte stream) into media items.

Shared by :class:`~vision_stream.media.file_source.FileSource` and the container
mode of :class:`~vision_stream.media.push_source.PushSource`, so a file and the
same bytes pushed in pieces produce the same items.

- The first video and first audio stream are decoded together, in the
  container's interleaving order (which muxers keep close to media-time order).
- Media time (seconds) is relative to the start of the selected streams: the
  smallest stream ``start_time`` (or the first timestamp seen when the
  container does not know it), so A/V offsets inside the file survive.
- Video frames are lazy: ``to_bgr()`` calls swscale once, ``thumbnail_gray()``
  lets swscale scale straight to a small gray picture; unsampled frames are
  never converted.
- A packet or frame that fails to decode becomes a :class:`BadPacket` item and
  decoding goes on; too many demux errors in a row end the stream with
  :class:`~vision_stream.errors.DecodeError`.
- A track whose codec FFmpeg does not know (no decoder) is reported once as a
  :class:`BadPacket` and skipped; the other track goes on.
- ``max_pixels``: FFmpeg's codec option of that name makes the decoder refuse
  to allocate a bigger picture (on every size change, whatever the header
  said), and every decoded frame is checked too: over it is
  :class:`~vision_stream.errors.LimitExceededError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any, Protocol

import av
import av.container
import numpy as np
from av.video.reformatter import VideoReformatter

from ..config import AudioPolicy
from ..errors import DecodeError, LimitExceededError, SourceOpenError
from .audio import AudioConverter
from .confine import Readable, limit_decoder, open_confined, pixel_limit_error
from .types import BadPacket, MediaItem, VideoFrame

__all__ = ["MAX_CONSECUTIVE_DEMUX_ERRORS", "ContainerDecoder", "PacketSink", "Readable", "open_container"]

# Demux errors in a row after which the input is declared unreadable (a
# truncated/garbage tail would otherwise spin forever without progress).
MAX_CONSECUTIVE_DEMUX_ERRORS = 32
_DEFAULT_FPS = 25.0  # frame duration guess when a frame has no timestamp


def open_container(
    target: str | Readable, *, description: str, options: dict[str, str] | None = None
) -> av.container.InputContainer:
    """Open a local file path or a readable file-like object (pushed bytes) for demuxing,
    confined to the allowed container formats (:func:`~vision_stream.media.confine.open_confined`).

    Raises NotFoundError for a missing file, InvalidInputError for a format
    that is not allowed (naming it), and SourceOpenError (with the FFmpeg
    reason) for anything FFmpeg cannot read or that has neither a video nor an
    audio stream.
    """
    return open_confined(target, description=description, options=options)


class PacketSink(Protocol):
    """Where the compressed video packets go as they are demuxed (a session's
    evidence: pipeline/packet_ring.py), stamped with the frames' media time."""

    def start_stream(self, stream: Any) -> None: ...

    def add(self, data: bytes, *, pts: float, dts: float, duration: float, keyframe: bool) -> None: ...


def _seconds(ts: int | None, time_base: Fraction | None) -> float | None:
    if ts is None or time_base is None:
        return None
    return float(ts * time_base)


class ContainerDecoder:
    """Turn an open input container into a blocking iterator of media items.

    ``time_offset`` (seconds) is added to every media time (used by looping
    sources to keep time monotonic across passes). ``audio=None`` ignores the
    audio stream (not even demuxed). ``keyframes_only`` hands only key video
    packets to the decoder: the rest are dropped before they cost anything
    (no slice parsing, no decode call), far less CPU when the sampling interval
    is at least the GOP. ``max_keyframe_gap`` (seconds) guards that mode: a
    keyframe further than this from the previous one ends it, and everything
    from that keyframe on is decoded (``keyframe_fallback`` is then True), so a
    file whose GOP grows later still gets its samples. ``should_stop`` is
    polled between packets so another thread can end iteration promptly.

    After iteration, ``end_time`` is the media time just past the last item.
    Counters: ``video_frames``, ``audio_frames``, ``bad_packets``.
    """

    def __init__(
        self,
        container: av.container.InputContainer,
        *,
        audio: AudioPolicy | None,
        should_stop: Callable[[], bool] = lambda: False,
        time_offset: float = 0.0,
        keyframes_only: bool = False,
        max_keyframe_gap: float | None = None,
        max_pixels: int | None = None,
        packet_sink: PacketSink | None = None,
    ) -> None:
        self._container = container
        self._packet_sink = packet_sink
        self._should_stop = should_stop
        self._offset = time_offset
        self._max_pixels = max_pixels
        self._skipped: list[str] = []
        self._video = self._first_decodable(container.streams.video, "video")
        self._audio = self._first_decodable(container.streams.audio, "audio") if audio is not None else None
        if self._video is not None and max_pixels is not None:
            self._check_size(self._video.codec_context.width, self._video.codec_context.height, "video header")
            limit_decoder(self._video, max_pixels)
        self._keyframes_only = keyframes_only and self._video is not None
        self._max_keyframe_gap = max_keyframe_gap
        self._last_key_pts: int | None = None
        self.keyframe_fallback = False
        if self._video is not None:
            # Every frame decoded: frame threads keep both cores busy on
            # H.264/HEVC. Keyframes only: one decoder thread. Frame threads
            # hold each output back by ``thread_count - 1`` packets, which here
            # are keyframes a GOP apart (seconds late for a paced session), and
            # give nothing when one packet a second is decoded; slice threads
            # shorten one keyframe's wall time but cost ~9 % more CPU (720p:
            # 24.7 vs 22.7 ms CPU per keyframe) and add ``cores + 1`` threads
            # per session that compete with the event loop. The parallelism of
            # a fleet comes from decoding many sessions at once (workers.py).
            if self._keyframes_only:
                self._video.codec_context.thread_count = 1
            else:
                self._video.codec_context.thread_type = "AUTO"
            rate = self._video.average_rate or self._video.guessed_rate
            self._frame_duration = 1.0 / float(rate) if rate else 1.0 / _DEFAULT_FPS
        else:
            self._frame_duration = 1.0 / _DEFAULT_FPS
        self._converter = AudioConverter(audio) if self._audio is not None and audio is not None else None
        self._bgr = _Converter()
        self._gray = _Converter()
        self._scaled = _Converter()
        self._origin = self._known_origin(container)
        self._last_video_t: float | None = None
        self.end_time = time_offset
        self.video_frames = 0
        self.audio_frames = 0
        self.bad_packets = 0

    def _first_decodable(self, streams: Any, kind: str) -> Any:
        """The first stream of ``kind`` FFmpeg has a decoder for; the others
        before it are noted, to be reported once by ``items()``."""
        for stream in streams:
            if stream.codec_context is not None:
                return stream
            self._skipped.append(f"{kind} track {stream.index}: codec unknown to FFmpeg, track skipped")
        return None

    def _check_size(self, width: int, height: int, what: str) -> None:
        if self._max_pixels is not None and width * height > self._max_pixels:
            raise LimitExceededError(
                f"media: {what} {width}x{height} is over the limit of {self._max_pixels} pixels"
            )

    @property
    def video_size(self) -> tuple[int, int] | None:
        """(width, height) in pixels of the video stream, if any."""
        if self._video is None:
            return None
        return self._video.codec_context.width, self._video.codec_context.height

    def _known_origin(self, container: av.container.InputContainer) -> float | None:
        """The earliest start of the video and the first decodable audio stream,
        the latter even when audio is not decoded (``audio=None``): a video-only
        read (``vision-stream frames``) then gives each frame the media time a
        full session gives it, when the video starts after the audio."""
        audio = self._audio or next((s for s in container.streams.audio if s.codec_context is not None), None)
        starts = [
            _seconds(s.start_time, s.time_base)
            for s in (self._video, audio)
            if s is not None and s.start_time is not None
        ]
        known = [t for t in starts if t is not None]
        return min(known) if known else None

    def _media_time(self, ts: int | None, time_base: Fraction | None) -> float | None:
        seconds = _seconds(ts, time_base)
        if seconds is None:
            return None
        if self._origin is None:
            self._origin = seconds  # container did not know: first timestamp seen
        return seconds - self._origin + self._offset

    def items(self) -> Iterator[MediaItem]:
        """Decode to the end of input (or until ``should_stop()``); flushes decoders and
        the audio converter at the end."""
        for message in self._skipped:
            self.bad_packets += 1
            yield BadPacket(None, message)
        streams = [s for s in (self._video, self._audio) if s is not None]
        if not streams:
            raise SourceOpenError("no video or audio track with a codec FFmpeg can decode")
        if self._packet_sink is not None and self._video is not None:
            self._packet_sink.start_stream(self._video)
        demux = self._container.demux(streams)
        errors_in_row = 0
        while not self._should_stop():
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.error.EOFError:
                break
            except av.error.FFmpegError as exc:
                errors_in_row += 1
                self.bad_packets += 1
                if errors_in_row > MAX_CONSECUTIVE_DEMUX_ERRORS:
                    raise DecodeError(f"input unreadable after {errors_in_row} demux errors: {exc}") from exc
                yield BadPacket(None, f"demux error: {exc}")
                demux = self._container.demux(streams)  # a failed generator is finished; resume reading
                continue
            errors_in_row = 0
            if self._packet_sink is not None and packet.stream is self._video and packet.size:
                self._keep_packet(packet, self._packet_sink)  # every packet, also those keyframe mode skips
            if self._keyframes_only and packet.stream is self._video and not self._wanted(packet):
                continue
            try:
                frames = packet.decode()
                if self._keyframes_only and packet.stream is self._video and packet.size and not frames:
                    frames.extend(self._drain_video())
            except av.error.FFmpegError as exc:
                if packet.stream is self._video and self._max_pixels is not None:
                    over = pixel_limit_error(exc, packet, self._max_pixels)
                    if over is not None:
                        raise over from None
                self.bad_packets += 1
                yield BadPacket(
                    self._media_time(packet.pts, packet.time_base),
                    f"undecodable {packet.stream.type} packet: {exc}",
                )
                continue
            for frame in frames:
                if isinstance(frame, av.VideoFrame):
                    yield self._video_item(frame)
                elif isinstance(frame, av.AudioFrame):
                    yield from self._audio_items(frame)
        if self._converter is not None and not self._should_stop():
            for chunk in self._converter.flush():
                self.end_time = max(self.end_time, chunk.media_time + chunk.duration)
                yield chunk

    def _keep_packet(self, packet: av.Packet, sink: PacketSink) -> None:
        """Hand one video packet's bytes to ``sink`` with media times (seconds)
        on the frames' clock; ``bytes(packet)`` copies it out of FFmpeg's buffer,
        which the demuxer reuses."""
        pts = self._media_time(packet.pts, packet.time_base)
        if pts is None:
            return  # no timestamp (some AVI/raw streams): cannot be placed on the clock
        dts = self._media_time(packet.dts, packet.time_base)
        duration = _seconds(packet.duration, packet.time_base) or self._frame_duration
        sink.add(bytes(packet), pts=pts, dts=pts if dts is None else dts, duration=duration,
                 keyframe=bool(packet.is_keyframe))

    def _drain_video(self) -> list[av.VideoFrame]:
        """Keyframe mode: take the picture the decoder holds back for reordering now.

        A decoder with B-frame reordering (H.264/HEVC ``has_b_frames``) outputs
        a picture only once later packets arrive; with keyframes alone those are
        a GOP apart, so every sample would leave a GOP or two late. Draining
        (an end-of-stream packet) hands it out at once; ``flush_buffers`` makes
        the decoder accept packets again, and the next packet it is given is a
        keyframe, which needs no earlier reference.
        """
        assert self._video is not None
        context = self._video.codec_context
        frames = [f for f in context.decode(None) if isinstance(f, av.VideoFrame)]
        context.flush_buffers()
        for frame in frames:
            if frame.time_base is None:  # no packet to take it from
                frame.time_base = self._video.time_base
        return frames

    def _wanted(self, packet: av.Packet) -> bool:
        """Keyframe mode: decode key packets (and the empty flush packet) only,
        until a keyframe gap longer than ``max_keyframe_gap`` ends the mode."""
        if packet.size == 0:
            return True  # end-of-stream flush: drains the decoder's threads
        if not packet.is_keyframe:
            return False
        if self._max_keyframe_gap is not None and packet.pts is not None and packet.time_base is not None:
            if self._last_key_pts is not None:
                gap = float((packet.pts - self._last_key_pts) * packet.time_base)
                if gap > self._max_keyframe_gap:
                    # Too late for the GOP just skipped; decode everything from here on.
                    self._keyframes_only = False
                    self.keyframe_fallback = True
            self._last_key_pts = packet.pts
        return True

    def _video_item(self, frame: av.VideoFrame) -> VideoFrame:
        self._check_size(frame.width, frame.height, "decoded video frame")
        t = self._media_time(frame.pts, frame.time_base)
        if t is None:
            # No timestamp (some AVI/raw streams): one frame after the previous one.
            t = self._offset if self._last_video_t is None else self._last_video_t + self._frame_duration
        self._last_video_t = t
        self.video_frames += 1
        self.end_time = max(self.end_time, t + self._frame_duration)
        return VideoFrame(
            media_time=t,
            width=frame.width,
            height=frame.height,
            loader=self._bgr.bgr_loader(frame),
            gray_loader=self._gray.gray_loader(frame),
            scaled_loader=self._scaled.scaled_bgr_loader(frame),
            pts=frame.pts,
            time_base=frame.time_base,
            keyframe=bool(frame.key_frame),
        )

    def _audio_items(self, frame: av.AudioFrame) -> Iterator[MediaItem]:
        assert self._converter is not None
        self.audio_frames += 1
        t = self._media_time(frame.pts, frame.time_base)
        for chunk in self._converter.push_frame(frame, t):
            self.end_time = max(self.end_time, chunk.media_time + chunk.duration)
            yield chunk


class _Converter:
    """One swscale context reused across frames (per decoder and purpose).

    ``frame.reformat()`` builds a fresh SwsContext on every call; for a 64x36
    probe thumbnail that set-up is most of the cost (measured 0.52 -> 0.15 ms
    per 768x432 frame). The lock makes a loader safe to call from whichever
    thread samples/encodes.
    """

    def __init__(self) -> None:
        self._reformatter = VideoReformatter()
        self._lock = threading.Lock()

    def bgr_loader(self, frame: av.VideoFrame) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            with self._lock:
                return self._reformatter.reformat(frame, format="bgr24").to_ndarray()

        return load

    def scaled_bgr_loader(self, frame: av.VideoFrame) -> Callable[[int, int], np.ndarray]:
        def load(width: int, height: int) -> np.ndarray:
            # Scale and convert in one swscale pass (area averaging, like
            # cv2.INTER_AREA): converting a 1080p picture to BGR and then
            # resizing it costs about 5x more (measured 5.1 vs 0.9 ms at 720p).
            with self._lock:
                return self._reformatter.reformat(
                    frame, width=width, height=height, format="bgr24", interpolation="AREA"
                ).to_ndarray()

        return load

    def gray_loader(self, frame: av.VideoFrame) -> Callable[[int, int], np.ndarray]:
        def load(width: int, height: int) -> np.ndarray:
            # swscale converts and scales in one pass, touching only what it needs.
            with self._lock:
                return self._reformatter.reformat(
                    frame, width=width, height=height, format="gray"
                ).to_ndarray()

        return load
