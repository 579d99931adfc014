"""Media an attacker sends, through the real gRPC server on loopback: the demuxer
confinement, the URL policy on redirects and HLS entries, and decode limits.

Every byte string here is real media (or a real playlist) made at test time.
"""

from __future__ import annotations

import asyncio
import http.server
import io
import os
import socket
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import grpc
import numpy as np
import pytest
from helpers.paths import SAMPLES
from helpers.server import Served, serve

from vision_stream.config import AudioPolicy, Limits
from vision_stream.media.file_source import FileSource
from vision_stream.media.types import BadPacket, VideoFrame
from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb

CONFIG = pb.StreamRequest(config=pb.SessionConfig(backend="local", lossless=True))
WATCH_CONFIG = pb.SessionConfig(backend="local")
TIMEOUT = 20.0


@pytest.fixture
async def served(media_root: Path) -> AsyncIterator[Served]:
    """A server allowing http from 127.0.0.1 only ("localhost" is a forbidden host)."""
    access = SourceAccess(media_root=media_root, allowed_schemes=frozenset({"http"}),
                          allowed_hosts=frozenset({"127.0.0.1"}))
    async for s in serve(ServiceConfig(access=access, limits=Limits(max_sessions=8)), media_root):
        yield s


async def _stream(served: Served, chunks: list[bytes]) -> tuple[grpc.StatusCode, str, list[pb.Event]]:
    """Push ``chunks`` as MediaChunks; (final status, its details, events)."""
    async def requests() -> AsyncIterator[pb.StreamRequest]:
        yield CONFIG
        for chunk in chunks:
            yield pb.StreamRequest(media=pb.MediaChunk(data=chunk))

    events: list[pb.Event] = []

    async def run() -> tuple[grpc.StatusCode, str]:
        try:
            async for event in served.stub.Stream(requests()):
                events.append(event)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""

    code, details = await asyncio.wait_for(run(), TIMEOUT)
    return code, details, events


def _errors(events: list[pb.Event]) -> list[pb.ErrorEvent]:
    return [e.error for e in events if e.HasField("error")]


# ------------------------------------------------------------ ffconcat / SDP

class FifoTripwire:
    """A named pipe standing in for a secret file: any open of it for reading
    (by FFmpeg, in this process) completes the blocked writer's open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._wait_for_reader, daemon=True)
        self._thread.start()

    def _wait_for_reader(self) -> None:
        fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens the pipe
        self.opened.set()
        os.close(fd)

    def disarm(self) -> bool:
        """Whether a reader had opened the pipe; unblocks the writer either way."""
        was_opened = self.opened.is_set()
        if not was_opened:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self._thread.join(5)
            os.close(fd)
        return was_opened


@pytest.mark.parametrize("split", [False, True])
async def test_pushed_ffconcat_naming_a_file_outside_the_root_is_refused(
    served: Served, tmp_path: Path, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attack: a relative name (the concat demuxer's default "safe"
    # mode refuses absolute ones) resolved against the server's working directory.
    monkeypatch.chdir(tmp_path)
    secret = FifoTripwire(tmp_path / "secret_clip.mp4")  # outside the media root
    playlist = b"ffconcat version 1.0\nfile secret_clip.mp4\n"
    chunks = [playlist[:5], playlist[5:]] if split else [playlist]
    try:
        code, details, _ = await _stream(served, chunks)
    finally:
        opened = secret.disarm()
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "ffconcat" in details and str(tmp_path) not in details
    assert not opened, "the server opened a file outside the media root"


def _udp_ports() -> set[int]:
    ports = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                ports.add(int(line.split()[1].rsplit(":", 1)[1], 16))
    return ports


async def test_pushed_sdp_is_refused_and_binds_no_socket(served: Served) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed
    sdp = (f"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=attack\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
           f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n").encode()
    code, details, _ = await _stream(served, [sdp])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "SDP" in details
    assert port not in _udp_ports() and port + 1 not in _udp_ports()


def test_ffconcat_file_in_the_media_root_is_refused(tmp_path: Path) -> None:
    secret = FifoTripwire(tmp_path / "secret.mp4")
    listed = tmp_path / "innocent.mp4"  # names its neighbour: a relative, "safe" concat entry
    listed.write_bytes(b"ffconcat version 1.0\nfile secret.mp4\n")
    try:
        with pytest.raises(Exception, match="ffconcat") as caught:
            FileSource(listed, audio=None)
    finally:
        assert not secret.disarm()
    assert caught.type.__name__ == "InvalidInputError"


# --------------------------------------------------------------- HTTP / HLS

class LoopbackHttp:
    """A loopback HTTP server answering from a path -> (status, headers, body) table;
    ``requests`` records (Host header, path) of every request."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append((self.headers.get("host", ""), self.path))
                status, headers, body = outer.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for name, value in {"content-length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def http_server() -> Iterator[LoopbackHttp]:
    server = LoopbackHttp({})
    yield server
    server.close()


@pytest.fixture(scope="module")
def ts_segment() -> bytes:
    """samples/sample.mp4's first seconds remuxed to MPEG-TS (a real HLS segment)."""
    out = io.BytesIO()
    with av.open(str(SAMPLES / "sample.mp4")) as inp, av.open(out, "w", format="mpegts") as ts:
        src = inp.streams.video[0]
        dst = ts.add_stream_from_template(src)
        for packet in inp.demux(src):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * packet.time_base > 2:
                break
            packet.stream = dst
            ts.mux(packet)
    return out.getvalue()


async def _watch_until_end(served: Served, url: str) -> list[pb.Event]:
    events: list[pb.Event] = []

    async def run() -> None:
        async for event in served.stub.Watch(pb.WatchRequest(source=url, config=WATCH_CONFIG)):
            events.append(event)

    await asyncio.wait_for(run(), TIMEOUT)
    return events


def _assert_refused_host(events: list[pb.Event]) -> None:
    errors = _errors(events)
    assert errors and "localhost" in errors[-1].message and "allowed hosts" in errors[-1].message, errors
    assert events[-1].HasField("session_ended")


async def test_hls_segment_on_a_forbidden_host_is_never_fetched(
    served: Served, http_server: LoopbackHttp, ts_segment: bytes
) -> None:
    port = http_server.port
    http_server.routes.update({
        "/live.m3u8": (200, {"content-type": "application/vnd.apple.mpegurl"},
                       (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
                        f"#EXTINF:2.0,\nhttp://localhost:{port}/seg0.ts\n#EXT-X-ENDLIST\n").encode()),
        "/seg0.ts": (200, {"content-type": "video/mp2t"}, ts_segment),
    })
    events = await _watch_until_end(served, f"http://127.0.0.1:{port}/live.m3u8")
    _assert_refused_host(events)
    assert ("127.0.0.1:" + str(port), "/live.m3u8") in http_server.requests
    assert all(path != "/seg0.ts" for _, path in http_server.requests), http_server.requests


async def test_hls_on_an_allowed_host_plays(served: Served, http_server: LoopbackHttp, ts_segment: bytes) -> None:
    http_server.routes.update({
        "/ok.m3u8": (200, {}, b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg0.ts\n#EXT-X-ENDLIST\n"),
        "/seg0.ts": (200, {}, ts_segment),
    })
    events: list[pb.Event] = []

    async def run() -> None:
        async for event in served.stub.Watch(pb.WatchRequest(source=f"http://127.0.0.1:{http_server.port}/ok.m3u8",
                                                             config=WATCH_CONFIG)):
            events.append(event)
            if event.HasField("stats") and event.stats.frames_in > 0:
                return

    await asyncio.wait_for(run(), TIMEOUT)
    assert any(path == "/seg0.ts" for _, path in http_server.requests)


@pytest.mark.parametrize("target", ["/video.cgi", "/clip.ts"], ids=["mjpeg-path", "ffmpeg-path"])
async def test_redirect_to_a_forbidden_host_is_not_followed(
    served: Served, http_server: LoopbackHttp, ts_segment: bytes, target: str
) -> None:
    port = http_server.port
    http_server.routes.update({
        target: (302, {"location": f"http://localhost:{port}/elsewhere"}, b""),
        "/elsewhere": (200, {"content-type": "video/mp2t"}, ts_segment),
    })
    events = await _watch_until_end(served, f"http://127.0.0.1:{port}{target}")
    _assert_refused_host(events)
    assert all(path != "/elsewhere" for _, path in http_server.requests), http_server.requests


# ------------------------------------------------------------------- limits

def _peak_rss_reset() -> None:
    """Reset VmHWM (Linux: writing 5 to clear_refs resets the peak RSS)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


RSS_BOUND_KB = 200 * 1024


def _png_1bit(width: int, height: int) -> bytes:
    """A real, valid black 1-bit PNG: 16000x16000 is ~100 KB (decoded: 768 MB of BGR)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


async def test_huge_png_snapshot_is_resource_exhausted_before_decoding(served: Served) -> None:
    png = _png_1bit(16000, 16000)
    assert len(png) < 500_000
    _peak_rss_reset()
    before = _status_kb("VmRSS")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.stub.AnalyzeSnapshot(pb.SnapshotRequest(image=pb.VideoFrame(data=png), backend="local"))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "16000x16000" in (caught.value.details() or "")
    assert _status_kb("VmHWM") - before < RSS_BOUND_KB


def _huge_gray_jpeg(width: int, height: int) -> bytes:
    """A valid baseline gray JPEG of any size (multiples of 32) in width*height/85 bytes:
    OpenCV's 8x8 JPEG header with the frame size patched, and a scan in which
    every 8x8 block is "DC unchanged (00), end of block (1010)" in the standard
    Huffman tables: 6 bits per block, three bytes per four blocks."""
    ok, buf = cv2.imencode(".jpg", np.full((8, 8), 128, np.uint8))
    assert ok
    data = bytes(buf)
    sos = data.index(b"\xff\xda")
    head = bytearray(data[: sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")])
    i = 2
    while head[i + 1] != 0xC0:  # to the baseline SOF0 frame header
        i += 2 + int.from_bytes(head[i + 2 : i + 4], "big")
    head[i + 5 : i + 7] = height.to_bytes(2, "big")
    head[i + 7 : i + 9] = width.to_bytes(2, "big")
    return bytes(head) + b"\x28\xa2\x8a" * ((width // 8) * (height // 8) // 4) + b"\xff\xd9"


def _growing_mkv() -> bytes:
    """An MJPEG Matroska stream whose header (and first five frames) say 320x240,
    followed by a 16000x16000 frame (3 MB of real, decodable JPEG)."""
    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as mkv:
        stream = mkv.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuvj420p"
        stream.codec_context.time_base = Fraction(1, 25)
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 40 * i, np.uint8), format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                mkv.mux(packet)
        for packet in stream.encode(None):
            mkv.mux(packet)
        big = av.Packet(_huge_gray_jpeg(16000, 16000))
        big.stream, big.pts, big.dts, big.time_base = stream, 5, 5, Fraction(1, 25)
        mkv.mux(big)
    return out.getvalue()


async def test_pushed_mkv_growing_past_the_cap_is_resource_exhausted(served: Served) -> None:
    data = _growing_mkv()
    _peak_rss_reset()
    before = _status_kb("VmRSS")
    code, details, events = await _stream(served, [data[i : i + 1_000_000] for i in range(0, len(data), 1_000_000)])
    errors = _errors(events)
    # The call's status, or (when the session's own failure ends the call) its error event:
    if code != grpc.StatusCode.OK:
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "16000x16000" in details, (code, details)
    else:
        assert errors and errors[-1].code == "limit_exceeded" and "16000x16000" in errors[-1].message, errors
    assert _status_kb("VmHWM") - before < RSS_BOUND_KB


# -------------------------------------------------------------- unknown codec

def _clip_with_unknown_video_codec(path: Path) -> Path:
    """MJPEG video + PCM audio in Matroska, with the video's CodecID renamed to one
    FFmpeg does not know (same length, so the EBML sizes stay right)."""
    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as mkv:
        video = mkv.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = 160, 120, "yuvj420p"
        audio = mkv.add_stream("pcm_s16le", rate=16000)
        audio.layout = "mono"
        tone = (np.sin(np.arange(640) / 5) * 8000).astype(np.int16)[None, :]
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 4, np.uint8), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in video.encode(frame):
                mkv.mux(packet)
            sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
            sound.sample_rate, sound.pts = 16000, i * 640
            for packet in audio.encode(sound):
                mkv.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                mkv.mux(packet)
    data = out.getvalue()
    assert data.count(b"V_MJPEG") == 1
    path.write_bytes(data.replace(b"V_MJPEG", b"V_QQQQQ"))
    return path


def test_unknown_codec_track_is_reported_once_and_the_other_track_goes_on(tmp_path: Path) -> None:
    source = FileSource(_clip_with_unknown_video_codec(tmp_path / "odd.mkv"), audio=AudioPolicy())
    items = list(source.items())
    bad = [i for i in items if isinstance(i, BadPacket)]
    assert len(bad) == 1 and "codec unknown" in bad[0].message and "video track" in bad[0].message
    assert not any(isinstance(i, VideoFrame) for i in items)
    audio_seconds = sum(getattr(i, "duration", 0.0) for i in items)
    assert audio_seconds > 1.5  # two seconds of audio, all of it


async def test_unknown_codec_track_through_watch(served: Served) -> None:
    _clip_with_unknown_video_codec(served.media_root / "odd.mkv")
    events = await asyncio.wait_for(
        _collect(served.stub.Watch(pb.WatchRequest(source="odd.mkv", fast=True, config=WATCH_CONFIG))), TIMEOUT)
    assert events[-1].session_ended.reason == "end_of_input"
    assert "internal" not in str(events).lower()


async def _collect(call: AsyncIterator[pb.Event]) -> list[pb.Event]:
    return [event async for event in call]


# ------------------------------------------------------------ media root paths

async def test_media_root_path_errors_are_clear_and_do_not_show_the_root(served: Served, tmp_path: Path) -> None:
    root = served.media_root
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")

    async def status(source: str) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _collect(served.stub.Watch(pb.WatchRequest(source=source, config=WATCH_CONFIG)))
        return caught.value.code(), caught.value.details() or ""

    for source, expected in [
        ("loop_a", grpc.StatusCode.INVALID_ARGUMENT),
        ("x" * 300 + ".mp4", grpc.StatusCode.INVALID_ARGUMENT),
        ("missing.mp4", grpc.StatusCode.NOT_FOUND),
    ]:
        code, details = await status(source)
        assert code == expected, (source, code, details)
        assert str(root) not in details and len(details) < 1000
    # Outside the root: the same answer whether the path exists or not.
    (tmp_path / "exists.mp4").write_bytes(b"x")
    answers = {await status(str(tmp_path / name)) for name in ("exists.mp4", "absent.mp4")}
    assert {code for code, _ in answers} == {grpc.StatusCode.PERMISSION_DENIED}
