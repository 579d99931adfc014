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
