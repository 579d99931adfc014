"""A session's evidence on request: the JPEGs behind its events (GetFrames) and
clips around them (ExportClip), from the rings the pipeline keeps
(:mod:`~vision_stream.pipeline.frame_ring`, :mod:`~vision_stream.pipeline.packet_ring`).

A clip of a source with packets is remuxed, never re-encoded: the packets
FFmpeg demuxed are written as they were into an MP4 whose video stream copies
the source's codec parameters (``add_stream_from_template``), starting at the
keyframe at or before the requested start (the pre-event buffer a decoder
needs), timestamps rebased so that keyframe is at 0. A frame-only source
(pushed JPEGs) gets the sampled JPEGs themselves as MJPEG in MP4, each JPEG
one packet, again without re-encoding.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av

from .errors import EvidenceRangeError, InvalidInputError
from .pipeline.frame_ring import FrameRing, RingFrame
from .pipeline.packet_ring import ClipPackets, PacketRing

__all__ = [
    "CLIP_CHUNK_BYTES", "FRAMES_OMITTED_TRAILER", "MAX_FRAMES_PER_CALL", "Clip", "FramesAnswer", "chunks",
    "clip_source", "make_clip", "select_frames",
]

MAX_FRAMES_PER_CALL = 256  # GetFrames' cap when the request names none (or more)
CLIP_CHUNK_BYTES = 256 * 1024  # ExportClip's chunk size, far below any message limit
# GetFrames' trailer: how many frames matched but were left out (cap or message size).
FRAMES_OMITTED_TRAILER = "vision-stream-frames-omitted"
_FRAME_OVERHEAD = 64  # protobuf bytes per SampledFrame besides its JPEG (ids, times, sizes)
_MJPEG_TIME_BASE = Fraction(1, 1000)


@dataclass(frozen=True, slots=True)
class FramesAnswer:
    frames: list[RingFrame]
    omitted: int  # frames that matched but did not fit the cap or the message size


@dataclass(frozen=True, slots=True)
class Clip:
    data: bytes
    mime_type: str
    start: float  # media seconds actually covered
    end: float
    from_sampled_frames: bool


def select_frames(ring: FrameRing, *, ids: Sequence[int], start: float, end: float, max_frames: int,
                  max_bytes: int) -> FramesAnswer:
    """The frames asked for: by ``ids``, else the span ``[start, end]`` (both 0: the
    newest frames), at most ``max_frames`` (0: ``MAX_FRAMES_PER_CALL``) and
    ``max_bytes`` of message; what did not fit is counted in ``omitted``."""
    if ids:
        found = [f for f in (ring.get(i) for i in dict.fromkeys(ids)) if f is not None]
        if not found:
            raise EvidenceRangeError(f"none of the {len(ids)} frame ids is held; the session holds "
                                     f"{ring.retained()}")
    else:
        if end < start:
            raise InvalidInputError(f"to_media_time {end:g} is before from_media_time {start:g}")
        found = ring.span(start, end) if (start, end) != (0.0, 0.0) else ring.span(float("-inf"), float("inf"))
        if not found:
            raise EvidenceRangeError(f"no frames in media {start:.3f}-{end:.3f} s; the session holds "
                                     f"{ring.retained()}")
        if (start, end) == (0.0, 0.0):
            found = found[-_cap(max_frames):]  # the newest ones
    return _fit(found, _cap(max_frames), max_bytes)


def _cap(max_frames: int) -> int:
    return min(max_frames, MAX_FRAMES_PER_CALL) if max_frames > 0 else MAX_FRAMES_PER_CALL


def _fit(frames: list[RingFrame], cap: int, max_bytes: int) -> FramesAnswer:
    kept: list[RingFrame] = []
    size = 0
    for frame in frames[:cap]:
        size += len(frame.jpeg) + _FRAME_OVERHEAD
        if size > max_bytes:
            break
        kept.append(frame)
    return FramesAnswer(kept, len(frames) - len(kept))


def clip_source(frames: FrameRing, packets: PacketRing | None, start: float,
                end: float) -> ClipPackets | list[RingFrame]:
    """What a clip of ``[start, end]`` is made of, chosen on the event loop (the
    frame ring is not thread-safe): the packets, or for a frame-only source the
    sampled JPEGs. Raises for a bad or unheld span, naming what is retained."""
    if end != 0.0 and end < start:
        raise InvalidInputError(f"to_media_time {end:g} is before from_media_time {start:g}")
    stop = end if end != 0.0 else float("inf")
    held_video = packets.span() if packets is not None else None
    if packets is not None and held_video is not None:
        clip = packets.select(start, stop) if start <= held_video[1] and stop >= held_video[0] else None
        if clip is None:
            raise EvidenceRangeError(f"no video for media {start:.3f}-{end:.3f} s; the session holds "
                                     f"{packets.retained()}")
        return clip
    held = frames.span(start, stop)
    if not held:
        raise EvidenceRangeError(f"no frames in media {start:.3f}-{end:.3f} s; the session holds "
                                 f"{frames.retained()}")
    return held


def make_clip(source: ClipPackets | list[RingFrame]) -> Clip:
    """Mux ``source`` (from :func:`clip_source`) into MP4; blocking, run it in a thread."""
    if isinstance(source, ClipPackets):
        return Clip(remux_mp4(source), "video/mp4", source.start, source.end, False)
    return Clip(mjpeg_mp4(source), "video/mp4", source[0].media_time, source[-1].media_time, True)


def remux_mp4(clip: ClipPackets) -> bytes:
    """The packets as they were, in an MP4 (no decoding, no encoding)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        # opaque: reuse the demuxer's codec (a decoder) rather than look up an encoder.
        stream = out.add_stream_from_template(clip.template.stream, opaque=True)
        time_base = clip.template.time_base
        stream.time_base = time_base
        origin = clip.start
        for kept in clip.packets:
            packet = av.Packet(kept.data)
            packet.stream = stream
            packet.time_base = time_base
            packet.pts = round((kept.pts - origin) / time_base)
            # A B-frame stream decodes before it shows: the keyframe's dts is
            # below 0, which the MP4 muxer turns into an edit list.
            packet.dts = round((kept.dts - origin) / time_base)
            packet.duration = round(kept.duration / time_base)
            packet.is_keyframe = kept.keyframe
            out.mux(packet)
    return buffer.getvalue()


def mjpeg_mp4(frames: Sequence[RingFrame]) -> bytes:
    """The sampled JPEGs as MJPEG in MP4, each JPEG one packet (no re-encoding).

    The stream's parameters come from FFmpeg's own probe of the first JPEG
    (``jpeg_pipe`` demuxer), so no encoder is opened.
    """
    probe = av.open(io.BytesIO(frames[0].jpeg), format="jpeg_pipe")
    buffer = io.BytesIO()
    try:
        with av.open(buffer, "w", format="mp4") as out:
            stream = out.add_stream_from_template(probe.streams.video[0], opaque=True)
            stream.time_base = _MJPEG_TIME_BASE
            origin = frames[0].media_time
            for i, frame in enumerate(frames):
                following = frames[i + 1].media_time if i + 1 < len(frames) else frame.media_time + 1.0
                packet = av.Packet(frame.jpeg)
                packet.stream = stream
                packet.time_base = _MJPEG_TIME_BASE
                packet.pts = packet.dts = round((frame.media_time - origin) / _MJPEG_TIME_BASE)
                packet.duration = max(1, round((following - frame.media_time) / _MJPEG_TIME_BASE))
                packet.is_keyframe = True
                out.mux(packet)
    finally:
        probe.close()
    return buffer.getvalue()


def chunks(data: bytes, size: int = CLIP_CHUNK_BYTES) -> Iterable[bytes]:
    """``data`` in pieces of at most ``size`` bytes (one ClipChunk each)."""
    return (data[i:i + size] for i in range(0, len(data), size))
