"""Gemini Live backend: ``BidiGenerateContent`` over WebSocket.

- ``protocol``/``messages``/``builders``: the sans-I/O core (no sockets, no clocks).
- ``models``: the one table of model capabilities.
- ``session``/``connection``/``retry``/``outbox``: the asyncio driver.
- ``rest``: which models speak Live (``GET /v1beta/models``).

Public API: :class:`GeminiLiveBackend`, :class:`LiveSettings` (+ :class:`LiveTimeouts`,
:class:`ReconnectPolicy`, :class:`VertexAuth`), :class:`LiveSession`, :func:`list_models`.
"""

from __future__ import annotations

from .backend import GeminiLiveBackend
from .models import ModelCapabilities, capabilities_for
from .rest import ModelInfo, list_models
from .session import LiveSession
from .settings import DEFAULT_MODEL, LiveSettings, LiveTimeouts, ReconnectPolicy, VertexAuth

__all__ = [
    "DEFAULT_MODEL",
    "GeminiLiveBackend",
    "LiveSession",
    "LiveSettings",
    "LiveTimeouts",
    "ModelCapabilities",
    "ModelInfo",
    "ReconnectPolicy",
    "VertexAuth",
    "capabilities_for",
    "list_models",
]
