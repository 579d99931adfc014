"""Fixtures: a real grpc.aio server on loopback (helpers.server) for the evidence RPCs."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers.paths import TRAFFIC_CLIP
from helpers.server import Served, serve

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig

CAR_CLIP = TRAFFIC_CLIP


@pytest.fixture
async def served(media_root: Path) -> AsyncIterator[Served]:
    if CAR_CLIP.is_file():
        shutil.copy(CAR_CLIP, media_root / CAR_CLIP.name)  # a symlink would leave the media root
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))
    async for s in serve(config, media_root):
        yield s
