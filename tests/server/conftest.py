"""Fixtures: a real grpc.aio server on a free loopback port (helpers.server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers.server import Served, serve

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig


@pytest.fixture
async def served(media_root: Path) -> AsyncIterator[Served]:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))
    async for s in serve(config, media_root):
        yield s
