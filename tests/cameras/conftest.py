"""Fixtures: a real GStreamer RTSP server and a loopback MJPEG camera (helpers.cameras)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers.cameras import AXIS_MJPEG, CAMERA_CLIP, RtspServer, free_port, gstreamer_missing, server_args
from helpers.clips import make_clip
from helpers.watching import Client, serve_cameras


@pytest.fixture(scope="session")
def gstreamer() -> None:
    why = gstreamer_missing()
    if why is not None:
        pytest.skip(why)


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 s of H.264 (GOP 20) + AAC 16 kHz mono: the RTSP server's /clip."""
    return make_clip(tmp_path_factory.mktemp("rtsp") / "clip.mp4", seconds=90, gop=20, audio=True, **CAMERA_CLIP)


@pytest.fixture
def rtsp_server(gstreamer: None, clip_path: Path) -> Iterator[RtspServer]:
    """A fresh RTSP server per test (tests kill and stall it)."""
    yield from _running(RtspServer(server_args(clip_path), port=free_port()))


@pytest.fixture
def rtsp_auth_server(gstreamer: None, clip_path: Path) -> Iterator[RtspServer]:
    yield from _running(RtspServer(server_args(clip_path), port=free_port(), user="viewer", password="s3cr3t-Pw.42"))


def _running(server: RtspServer) -> Iterator[RtspServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def axis_mjpeg() -> bytes:
    if not AXIS_MJPEG.is_file():
        pytest.skip(f"{AXIS_MJPEG} is absent (real footage only exists beside the dev checkout)")
    return AXIS_MJPEG.read_bytes()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A gRPC server allowing rtsp/rtsps/http sources (helpers.watching.serve_cameras)."""
    c = await serve_cameras()
    try:
        yield c
    finally:
        await c.close()
