"""Camera clips are remuxed from the camera's own packets (issue 12 item 3): a Watch of a
real RTSP server (Debian's gst-rtsp-server, helpers.cameras), ExportClip around a moment,
and across a camera killed and restarted, where the evidence starts a new codec segment
at the reconnected stream's first keyframe."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from helpers.cameras import CAMERA_CLIP, RtspServer, free_port, gstreamer_missing, server_args
from helpers.clips import make_clip
from helpers.timing import scaled
from helpers.watching import CONFIG, Client, Follower, index_of, is_commentary, is_recovery, serve_cameras

from vision_stream.v1 import vision_stream_pb2 as pb

pytestmark = pytest.mark.slow  # a real GStreamer RTSP server (subprocess)


@pytest.fixture
def rtsp(tmp_path: Path) -> Iterator[RtspServer]:
    why = gstreamer_missing()
    if why is not None:
        pytest.skip(why)
    clip = make_clip(tmp_path / "clip.mp4", seconds=20, gop=20, audio=True, **CAMERA_CLIP)
    server = RtspServer(server_args(clip), port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def export(client: Client, session_id: str, start: float, end: float) -> tuple[pb.ClipChunk, bytes]:
    chunks = [c async for c in client.stub.ExportClip(
        pb.ExportClipRequest(session_id=session_id, from_media_time=start, to_media_time=end))]
    return chunks[0], b"".join(c.data for c in chunks)


def decoded(data: bytes) -> tuple[str, list[float], bool]:
    """(codec, frame times, first packet is a keyframe) of an MP4 clip, decoded by PyAV."""
    with av.open(io.BytesIO(data)) as clip:
        stream = clip.streams.video[0]
        first = next(p for p in clip.demux(stream) if p.size)
        codec = stream.codec_context.name
    with av.open(io.BytesIO(data)) as clip:
        times = [float(f.time) for f in clip.decode(clip.streams.video[0]) if f.time is not None]
    return codec, times, bool(first.is_keyframe)


async def test_rtsp_clip_is_the_camera_packets_remuxed_across_a_reconnect(rtsp: RtspServer) -> None:
    client = await serve_cameras()
    follower = Follower(client.stub.Watch(pb.WatchRequest(source=rtsp.url("/live"), config=CONFIG)))
    try:
        await follower.wait_for(is_commentary, 20)
        await follower.wait_for(lambda e: e.HasField("commentary") and e.media_time >= 3.0, 20)
        session_id = follower.events[0].session_id
        first, data = await export(client, session_id, 1.0, 3.0)
        assert first.mime_type == "video/mp4" and not first.from_sampled_frames
        assert first.from_media_time <= 1.0 and first.to_media_time >= 3.0 - 0.2
        codec, times, keyframe_first = decoded(data)
        # The camera's H.264, not JPEGs re-encoded: /live is x264 at 10 fps, keyframe every 2 s.
        assert codec == "h264" and keyframe_first
        assert 15 <= len(times) <= 45, len(times)  # from the keyframe before 1.0 s to 3.0 s at 10 fps

        rtsp.kill()
        await asyncio.sleep(scaled(1.0))
        rtsp.start()
        back = await follower.wait_for(is_recovery, 20)
        lost_at = back.media_time  # the clock's last reading before the outage
        # The first picture after the gap (the media clock jumped by the outage).
        anchor = (await follower.wait_for(lambda e: e.HasField("commentary") and e.media_time > lost_at + 0.5, 20,
                                          after=index_of(follower.events, back))).media_time
        await follower.wait_for(lambda e: e.HasField("commentary") and e.media_time >= anchor + 3.0, 20)
        # After the outage: a new segment, from the reconnected stream's first keyframe.
        after, data = await export(client, session_id, anchor + 0.5, anchor + 2.5)
        assert not after.from_sampled_frames and after.from_media_time >= anchor - 0.2
        codec, times, keyframe_first = decoded(data)
        assert codec == "h264" and keyframe_first and len(times) >= 15
        # A span starting inside the outage starts at the new segment, never before the gap.
        assert anchor - lost_at >= 1.0  # the camera was down for more than a second
        gap, data = await export(client, session_id, anchor - 0.3, anchor + 2.0)
        assert anchor - 0.2 <= gap.from_media_time <= anchor + 0.2 and gap.to_media_time >= anchor + 1.8
        assert decoded(data)[2]
    finally:
        await follower.cancel()
        await client.close()
