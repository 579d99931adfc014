"""HTTP MJPEG: the multipart parser on a real Axis body, and a loopback camera through Watch."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import re
import threading
import time

import grpc
import pytest
from helpers.cameras import MjpegServer, generated_mjpeg
from helpers.server import assert_gap_free
from helpers.timing import scaled
from helpers.watching import BOUNDED, CONFIG, Follower, is_commentary, serve_cameras

from vision_stream.config import AudioPolicy, SamplingPolicy
from vision_stream.media.image import jpeg_size
from vision_stream.media.mjpeg import MultipartJpegParser, open_http_stream
from vision_stream.media.reconnecting import ConnectionOptions
from vision_stream.media.sampler import FrameSampler
from vision_stream.media.types import MediaItem, SourceStatus, VideoFrame
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
    threading.Timer(0.3, server.stopping.clear).start()


# ------------------------------------------------ rate and arrival times (issue 15)

RATE_WINDOW = 4.5  # seconds of camera observed: cadence slots 0..4


@pytest.fixture(params=["generated", "axis"])
def low_bitrate_body(request: pytest.FixtureRequest) -> bytes:
    """A camera body whose 8 fps make ~10-25 KB/s: our own JPEGs (always), the Axis capture (when present)."""
    if request.param == "generated":
        return generated_mjpeg()
    body: bytes = request.getfixturevalue("axis_mjpeg")
    return body


def test_low_bitrate_camera_is_sampled_at_the_configured_rate(low_bitrate_body: bytes) -> None:
    """Frames are read as their bytes arrive and stamped with their arrival: the sampler gets
    one frame a second of 8, each on time (a fixed 64 KiB read delivered them in bursts every
    ~2.7 s, all with one time, and 0.37 samples a second)."""
    server = MjpegServer(low_bitrate_body, fps=8)
    sampler = FrameSampler(SamplingPolicy(fps=1.0, max_fps=1.0))
    arrivals: list[tuple[float, float]] = []  # (seconds since the first frame, its media time)
    sampled: list[float] = []
    source = open_http_stream(server.url(), audio=AudioPolicy(), options=BOUNDED)
    items = source.items()
    try:
        first: float | None = None
        for item in items:
            if not isinstance(item, VideoFrame):
                continue
            now = time.monotonic()
            first = now if first is None else first
            arrivals.append((now - first, item.media_time))
            if (chosen := sampler.offer(item)) is not None:
                sampled.append(chosen.media_time)
            if now - first >= RATE_WINDOW:
                break
    finally:
        items.close()
        source.close()
        server.close()
    times = [t for _, t in arrivals]
    gap = max(b - a for a, b in itertools.pairwise(times))
    # 8 fps is a part every 0.125 s; a loaded machine may read two at once, never seconds of them.
    assert times == sorted(times) and gap < 0.6, f"frames arrived in bursts (a {gap:.2f} s gap)"
    lag = max(abs(wall - t) for wall, t in arrivals)
    assert lag < 0.5, f"media time is not the arrival time (off by up to {lag:.2f} s)"
    rate = (len(sampled) - 1) / (sampled[-1] - sampled[0])
    assert len(sampled) >= 5 and 0.9 <= rate <= 1.1, f"sampled at {rate:.2f} fps: {sampled}"


def test_close_interrupts_a_read_blocked_on_a_silent_camera() -> None:
    """close() from another thread (Ctrl-C) ends items() at once, though the camera is silent
    and the read timeout is 30 s: the socket is shut down under the blocked read."""
    server = MjpegServer(generated_mjpeg(), fps=0.1)  # one part, then 10 s of silence
    options = ConnectionOptions(open_timeout=5.0, read_timeout=30.0, stall_timeout=60.0)
    source = open_http_stream(server.url(), audio=AudioPolicy(), options=options)
    got: list[MediaItem] = []
    first_frame = threading.Event()

    def read() -> None:
        for item in source.items():
            got.append(item)
            if isinstance(item, VideoFrame):
                first_frame.set()

    reader = threading.Thread(target=read, name="mjpeg-reader", daemon=True)
    reader.start()
    try:
        assert first_frame.wait(scaled(10)), f"no frame: {got}"
        time.sleep(0.3)  # the reader is now blocked in recv(), waiting for the next part
        closed = time.monotonic()
        source.close()
        reader.join(scaled(5))
        took = time.monotonic() - closed
    finally:
        source.close()
        server.close()
    assert not reader.is_alive() and took < 0.5, f"items() went on for {took:.2f} s after close()"
    assert [i.state for i in got if isinstance(i, SourceStatus)] == ["connecting", "streaming"]


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
