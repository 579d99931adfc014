"""Ring bounds under a long replay: a looped real clip through the demuxer into a tiny
PacketRing, and a looped Watch whose FrameRing has tiny bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers.paths import SAMPLES
from helpers.server import serve

from vision_stream.config import Limits
from vision_stream.media.file_source import FileSource
from vision_stream.media.types import VideoFrame
from vision_stream.pipeline.packet_ring import PacketRing
from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb


def test_packet_ring_bounds_hold_over_a_looped_clip() -> None:
    ring = PacketRing(max_bytes=120_000, max_seconds=3.0)
    source = FileSource(SAMPLES / "sample.mp4", audio=None, loop=True)
    source.packet_sink = ring
    frames = 0
    try:
        for item in source.items():
            if not isinstance(item, VideoFrame):
                continue
            frames += 1
            assert ring.nbytes <= ring.max_bytes
            held = ring.span()
            if held is not None:
                assert held[1] - held[0] <= ring.max_seconds + 0.5  # + the newest packet and B-frame reorder
                assert ring.select(held[0], held[0]) is not None  # starts at a keyframe
            if item.media_time > 40.0:  # more than three passes over the 12 s clip
                break
    finally:
        source.close()
    assert frames > 900 and len(ring) > 0


async def test_frame_ring_bounds_hold_in_a_looped_watch(media_root: Path) -> None:
    limits = Limits(evidence_frames=5, evidence_bytes=200_000, evidence_seconds=4.0)
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=limits)
    async for served in serve(config, media_root):
        call = served.stub.Watch(pb.WatchRequest(source="sample.mp4", loop=True, fast=True, detach=True,
                                                 config=pb.SessionConfig(backend="local")))
        session_id = (await anext(aiter(call))).session_id
        call.cancel()
        newest = 0
        for _ in range(25):  # ~2.5 s of a fast looped replay
            await asyncio.sleep(0.1)
            answer = await served.stub.GetFrames(pb.GetFramesRequest(session_id=session_id))
            frames = list(answer.frames)
            assert len(frames) <= 5 and sum(len(f.jpeg) for f in frames) <= 200_000
            if frames:
                assert frames[-1].media_time - frames[0].media_time <= 4.0
                newest = max(newest, frames[-1].frame_id)
        await served.stub.StopSession(pb.StopSessionRequest(session_id=session_id))
        assert newest > 20  # many more frames went through than the ring holds


def test_packet_ring_segments_and_access_units() -> None:
    """A reconnect (a second start_stream) opens a new segment at its first keyframe; a clip
    never spans two and one starting in the outage starts after it; packets sharing a
    timestamp (RTP: SPS/PPS apart from the IDR) become one access unit."""
    import av

    ring = PacketRing()
    with av.open(str(SAMPLES / "sample.mp4")) as container:
        stream = container.streams.video[0]
        ring.start_stream(stream)
        ring.add(b"sps", pts=0.0, dts=0.0, duration=0.1, keyframe=True)
        ring.add(b"idr", pts=0.0, dts=0.0, duration=0.1, keyframe=True)
        for i in range(1, 20):
            ring.add(b"p", pts=i / 10, dts=i / 10, duration=0.1, keyframe=False)
        ring.start_stream(stream)  # the camera reconnected; media time went on by the outage
        ring.add(b"late", pts=4.9, dts=4.9, duration=0.1, keyframe=False)  # no keyframe yet: undecodable
        for i in range(20):
            ring.add(b"k" if i == 0 else b"p", pts=5 + i / 10, dts=5 + i / 10, duration=0.1, keyframe=i == 0)
    assert len(ring) == 20 + 20 and ring.nbytes == len(b"spsidr") + 19 + 1 + 19
    first = ring.select(0.5, 10.0)
    assert first is not None and first.packets[0].data == b"spsidr" and first.end == 2.0  # ends with its segment
    after_gap = ring.select(3.0, 5.5)
    assert after_gap is not None and after_gap.start == 5.0 and after_gap.packets[0].data == b"k"
    assert after_gap.template is not first.template and len(after_gap.packets) == 6
