"""Gemini Live backend: ``BidiGenerateContent`` over WebSocket.

- ``protocol``/``messages``/``builders``/``schedule``/``outbox``: the sans-I/O core
  (no sockets, no clocks: the time is a parameter). ``schedule`` decides what
  goes out next and when a connection must rotate.
- ``models``: the one table of model capabilities; ``endings``: which endings
  are transient (the delays are ``vision_stream.retry``'s).
- ``driver``/``connection``: the asyncio driver (connect with retry, supervisor,
  one connection's tasks); ``session``: the ``BackendSession`` face.

Public API: :class:`GeminiLiveBackend`, :class:`LiveSettings` (+ :class:`LiveTimeouts`,
:class:`ReconnectPolicy`, :class:`VertexAuth`), :class:`LiveSession`.
The model catalogue (which models speak Live) is ``gemini_rest.catalog``: it is a REST call.
"""

from __future__ import annotations

from .backend import GeminiLiveBackend
from .models import ModelCapabilities, capabilities_for
from .session import LiveSession
from .settings import LiveSettings, LiveTimeouts, ReconnectPolicy, VertexAuth

__all__ = [
    "GeminiLiveBackend",
    "LiveSession",
    "LiveSettings",
    "LiveTimeouts",
    "ModelCapabilities",
    "ReconnectPolicy",
    "VertexAuth",
    "capabilities_for",
]
