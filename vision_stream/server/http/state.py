"""What every HTTP handler reads from its app: the gRPC server's own service and settings."""

from __future__ import annotations

from aiohttp import web

from ..auth import TokenTable
from ..service import VisionStreamService

__all__ = ["BODY_LIMIT", "SERVICE", "TOKENS"]

SERVICE = web.AppKey("vision_stream_service", VisionStreamService)
TOKENS = web.AppKey("vision_stream_tokens", TokenTable)
BODY_LIMIT = web.AppKey("vision_stream_body_limit", int)
