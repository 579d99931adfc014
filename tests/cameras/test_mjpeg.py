"""HTTP MJPEG: the multipart parser on a real Axis body, and a loopback camera through Watch."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

import grpc
import pytest
from helpers.cameras import MjpegServer
from helpers.server import assert_gap_free
from helpers.watching import BOUNDED, CONFIG, Follower, is_commentary, serve_cameras

from vision_stream.config import AudioPolicy
from vision_stream.media.image import jpeg_size
from vision_stream.media.mjpeg import MultipartJpegParser, open_http_stream
from vision_stream.media.types import SourceStatus, VideoFrame
from vision_stream.v1 import vision_stream_pb2 as pb


def split_feed(parser: MultipartJpegParser, data: bytes, seed: int) -> list:
    rng = random.Random(seed)
    parts, i = [], 0
    while i < len(data):
        n = rng.randint(1, 4000)
        parts += parser.feed(data[i : i + n])
        i += n
    return parts


def test_parser_splits_the_axis_body_at_any_read_boundary(axis_mjpeg: bytes) -> None:
    for seed in range(4):
        parts = split_feed(MultipartJpegParser(), axis_mjpeg, seed)
        assert len(parts) == 16 and not any(p.error for p in parts)
        assert all(jpeg_size(p.data) == (160, 120) for p in parts)


def test_parser_copes_without_content_length_with_lf_and_junk(axis_mjpeg: bytes) -> None:
    loose = re.sub(rb"Content-Length: \d+\r\n", b"", axis_mjpeg)
    loose = b"HTTP junk before the first part\r\n" + loose.replace(b"--myboundary\r\n", b"--myboundary\n")
    parts = MultipartJpegParser().feed(loose + b"\r\n--myboundary\n")
    assert len(parts) == 16 and not any(p.error for p in parts)


def test_parser_reports_non_jpeg_parts_and_bounds_its_buffer() -> None:
    parser = MultipartJpegParser(max_part_bytes=1000)
    parts = parser.feed(b"--b\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\r\n")
    assert parts[0].error.startswith("part 1 is not a JPEG")
    with pytest.raises(ValueError, match="exceeds"):
        parser.feed(b"--b\r\nContent-Length: 5000\r\n\r\n")
    with pytest.raises(ValueError):
        MultipartJpegParser(max_part_bytes=1000).feed(b"--b\r\n\r\n\xff\xd8" + bytes(20_000))


def test_mjpeg_source_reads_frames_with_arrival_times_and_reconnects(axis_mjpeg: bytes) -> None:
    server = MjpegServer(axis_mjpeg, fps=25)
    try:
        source = open_http_stream(server.url(), audio=AudioPolicy(), options=BOUNDED)
        frames: list[VideoFrame] = []
        states = []
        for item in source.items():
            if isinstance(item, VideoFrame):
                frames.append(item)
                if len(frames) == 20:
                    server.stopping.set()  # the camera hangs up mid-stream...
                    threading_restart(server)
            elif isinstance(item, SourceStatus):
                states.append(item.state)
                if states.count("streaming") == 2:
                    break
        source.close()
    finally:
        server.close()
    # An attempt during the hang-up window may also end at once: more than one "reconnecting" is fine.
    assert states[:3] == ["connecting", "streaming", "reconnecting"] and states[-1] == "streaming"
    assert set(states[2:-1]) == {"reconnecting"}
    times = [f.media_time for f in frames]
    assert times == sorted(times) and frames[0].to_bgr().shape == (120, 160, 3)
    assert server.requests >= 2


def threading_restart(server: MjpegServer) -> None:
    import threading

    threading.Timer(0.3, server.stopping.clear).start()


@pytest.mark.slow  # ~7 s: real camera footage paced through the server
async def test_watch_http_mjpeg_camera_with_credentials(
    axis_mjpeg: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "mj-Secret-9"
    camera = MjpegServer(axis_mjpeg, fps=10, user="admin", password=secret)
    c = await serve_cameras()
    try:
        follower = Follower(c.stub.Watch(pb.WatchRequest(source=camera.url(auth=f"admin:{secret}@"),
                                                         config=CONFIG)))
        await follower.wait_for(is_commentary, 20)
        await follower.wait_for(lambda e: e.HasField("stats") and e.stats.frames_in >= 10, 20)
        info = (await c.stub.ListSessions(pb.ListSessionsRequest())).sessions[0]
        assert info.source_state == "streaming" and info.source.startswith("http://admin:***@")
        await follower.cancel()
        assert_gap_free(follower.events, first=None)
        assert not any(secret in str(e) for e in follower.events) and secret not in str(info)

        started = time.monotonic()
        wrong = Follower(c.stub.Watch(pb.WatchRequest(source=camera.url(auth="admin:nope@"), config=CONFIG)))
        events = await wrong.wait_end(20)
        assert time.monotonic() - started < 10
        codes = [e.error.code for e in events if e.HasField("error")]
        failed = next(e for e in events if e.HasField("error"))
        assert codes == ["source_failed"] and "HTTP 401" in failed.error.message
    finally:
        await c.close()
        camera.close()
    assert secret not in caplog.text


async def test_watch_http_is_permission_denied_unless_allowed() -> None:
    c = await serve_cameras(schemes=("rtsp",))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in c.stub.Watch(pb.WatchRequest(source="http://127.0.0.1:1/video.mjpg", config=CONFIG)):
                pass
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await c.close()
    await asyncio.sleep(0)
