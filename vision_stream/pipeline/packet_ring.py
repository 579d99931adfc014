"""The compressed video packets behind a session's sampled frames: clips without re-encoding.

For sources with packets (files, RTSP, pushed containers: media/demux.py) the
demuxer hands every video packet here as it reads it, stamped with the same
media time the decoded frames get, so a span of the frame ring
(:mod:`~vision_stream.pipeline.frame_ring`) maps to a run of packets.
``ExportClip`` remuxes such a run into MP4 (:mod:`vision_stream.evidence`).

Bounded by media seconds and bytes (``Limits.evidence_seconds`` and
``evidence_bytes``). Eviction drops whole GOPs from the old end, so the oldest
packet kept is always a keyframe: a decoder can start there without any
earlier reference. A GOP larger than the whole byte bound is not kept at all
(the ring stays within its bound) until the next keyframe.

The codec parameters (extradata: H.264 SPS/PPS, ...) live in a
:class:`CodecTemplate`: a copy of the input stream's parameters held by a
never-started PyAV output container, since the input stream itself dies with
its container (a file's next pass, a reconnected camera). Each packet points
at the template it was read under, and a clip never spans two templates.

Written by the source thread, read by request handlers: one lock.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from ..config import EVIDENCE_BYTES, EVIDENCE_SECONDS
from ..errors import UsageError

__all__ = ["ClipPackets", "CodecTemplate", "PacketRing", "RingPacket"]


class CodecTemplate:
    """One input video stream's codec parameters, outliving its container.

    ``avcodec_parameters`` are copied by ``add_stream_from_template`` into an
    output container that is never started (no header, no I/O), which keeps
    them alive for later remuxing (``OutputContainer.add_stream_from_template``
    again, with ``opaque`` so no encoder is looked up: a codec FFmpeg can
    decode but not encode still remuxes).
    """

    def __init__(self, stream: Any) -> None:
        self._holder = av.open(io.BytesIO(), "w", format="matroska")
        self.stream = self._holder.add_stream_from_template(stream, opaque=True)
        self.time_base: Fraction = stream.time_base or Fraction(1, 90000)
        self.codec_name: str = stream.codec_context.name
        self.extradata: bytes = bytes(stream.codec_context.extradata or b"")


@dataclass(frozen=True, slots=True)
class RingPacket:
    """One compressed video packet; times are session media seconds."""

    data: bytes
    pts: float
    dts: float
    duration: float
    keyframe: bool
    template: CodecTemplate


@dataclass(frozen=True, slots=True)
class ClipPackets:
    """A run of packets to remux: starts at a keyframe, one codec template."""

    template: CodecTemplate
    packets: list[RingPacket]

    @property
    def start(self) -> float:
        return self.packets[0].pts

    @property
    def end(self) -> float:
        last = max(self.packets, key=lambda p: p.pts)
        return last.pts + last.duration


class PacketRing:
    """The newest video packets, whole GOPs, at most ``max_bytes`` and ``max_seconds``."""

    def __init__(self, max_bytes: int = EVIDENCE_BYTES, max_seconds: float = EVIDENCE_SECONDS) -> None:
        if max_bytes < 1 or not max_seconds > 0:
            raise UsageError("a packet ring holds at least one byte and some seconds")
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._packets: deque[RingPacket] = deque()
        self._bytes = 0
        self._template: CodecTemplate | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def start_stream(self, stream: Any) -> None:
        """A (new) video stream begins: the packets that follow use its codec parameters."""
        template = CodecTemplate(stream)
        with self._lock:
            self._template = template

    def add(self, data: bytes, *, pts: float, dts: float, duration: float, keyframe: bool) -> None:
        """Keep one packet (source thread). A packet that does not follow a kept
        keyframe of the current stream is skipped: it could not be decoded."""
        with self._lock:
            template = self._template
            if template is None or not data:
                return
            tail = self._packets[-1] if self._packets else None
            if not keyframe and (tail is None or tail.template is not template):
                return
            if tail is not None and tail.template is template and tail.dts == dts and tail.pts == pts:
                # One access unit demuxed as several packets (FFmpeg's RTP H.264
                # depacketizer emits in-band SPS/PPS apart from the IDR, same
                # timestamp): a muxer needs strictly increasing dts, and NAL units
                # (Annex B or length-prefixed alike) simply concatenate.
                self._packets[-1] = RingPacket(tail.data + data, pts, dts, max(tail.duration, duration),
                                               tail.keyframe or keyframe, template)
            else:
                self._packets.append(RingPacket(data, pts, dts, duration, keyframe, template))
            self._bytes += len(data)
            self._evict(pts)

    def _evict(self, newest: float) -> None:
        """Drop whole GOPs from the old end until within both bounds."""
        while self._packets and (self._bytes > self.max_bytes
                                 or newest - self._packets[0].pts > self.max_seconds):
            self._bytes -= len(self._packets.popleft().data)
            while self._packets and not self._packets[0].keyframe:
                self._bytes -= len(self._packets.popleft().data)

    def span(self) -> tuple[float, float] | None:
        """(oldest pts, newest pts + duration) held, in media seconds."""
        with self._lock:
            if not self._packets:
                return None
            return self._packets[0].pts, max(p.pts + p.duration for p in self._packets)

    def retained(self) -> str:
        held = self.span()
        return "no video packets" if held is None else f"video packets for media {held[0]:.3f}-{held[1]:.3f} s"

    def select(self, start: float, end: float) -> ClipPackets | None:
        """Packets for ``[start, end]``: from the last keyframe at or before ``start``
        (the pre-roll a decoder needs) through the last packet shown by ``end``,
        within one codec template. None when nothing held overlaps the span.

        A span starting in an outage (a camera reconnect: the old segment ends
        before ``start``) begins at the next segment's first keyframe instead, so
        the clip shows what came after the gap; a clip never spans two segments
        (their codec parameters may differ), so one crossing a reconnect ends
        where the older segment ends."""
        with self._lock:
            packets = list(self._packets)
        first = _start_index(packets, start)
        if first is None:
            return None
        template = packets[first].template
        run: list[RingPacket] = []
        for packet in packets[first:]:
            if packet.template is not template:
                break
            run.append(packet)
        # Decode order: keep everything up to the last packet shown by ``end``; a
        # reference frame shown later but decoded earlier (B-frames) stays in.
        last = max((i for i, p in enumerate(run) if p.pts <= end), default=None)
        if last is None:
            return None
        return ClipPackets(template, run[: last + 1])


def _start_index(packets: list[RingPacket], start: float) -> int | None:
    """Index of the keyframe a clip from ``start`` begins at (see PacketRing.select)."""
    first = None
    for i, packet in enumerate(packets):
        if packet.pts > start and first is not None:
            break
        if packet.keyframe and (packet.pts <= start or first is None):
            first = i
    if first is None:
        return None
    template = packets[first].template
    segment_end = max(p.pts + p.duration for p in packets[first:] if p.template is template)
    if segment_end < start:  # ``start`` lies in the outage after this segment
        later = next((i for i in range(first, len(packets)) if packets[i].template is not template), None)
        if later is not None:
            return later  # a segment's first packet is a keyframe (PacketRing.add)
    return first
