"""A real grpc.aio server on a free loopback port, and a stub to call it (fixtures in conftest)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from support import SAMPLES

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.app import RunningServer, start_server
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc


@dataclass
class Served:
    running: RunningServer
    channel: grpc.aio.Channel
    stub: pb_grpc.VisionStreamStub
    media_root: Path


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    shutil.copy(SAMPLES / "sample.mp4", root / "sample.mp4")
    shutil.copy(SAMPLES / "still.jpg", root / "still.jpg")
    return root


async def _serve(config: ServiceConfig, media_root: Path) -> AsyncIterator[Served]:
    running = await start_server(config, host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield Served(running, channel, pb_grpc.VisionStreamStub(channel), media_root)
    finally:
        await channel.close()
        await running.stop(grace=5.0)


@pytest.fixture
async def served(media_root: Path) -> AsyncIterator[Served]:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))
    async for s in _serve(config, media_root):
        yield s


def kinds(events: list[pb.Event]) -> list[str]:
    return [e.WhichOneof("payload") for e in events]


def assert_gap_free(events: list[pb.Event]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"seq not gap-free: {seqs[:20]}..."
