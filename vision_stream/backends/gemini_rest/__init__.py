"""Gemini REST backend: snapshots of a stream over ``generateContent`` (the failover chain's
middle link, and the snapshot RPC). Laid out like ``gemini_live``:

- ``messages``/``sse``/``errors``: the sans-I/O core (request bodies and replies,
  the SSE parser, Google's error object -> a :class:`~vision_stream.errors.ServiceError`
  carrying its verdict);
- ``snapshot_policy``: which frames and what context each request carries (pure);
- ``client``/``limiter``: the HTTP driver (retries, quota holds, pacing);
- ``session``/``backend``/``settings``: the ``BackendSession`` face, the backend, its settings;
- ``catalog``: which models the key can use (``GET /v1beta/models``).

Public API: :class:`GeminiRestBackend`, :class:`RestSession`, :class:`RestSettings`
(+ :class:`RestTimeouts`, :class:`RestRetryPolicy`), :func:`list_models`.
"""

from __future__ import annotations

from .backend import GeminiRestBackend
from .catalog import ModelInfo, list_models
from .session import RestSession
from .settings import RestRetryPolicy, RestSettings, RestTimeouts

__all__ = [
    "GeminiRestBackend",
    "ModelInfo",
    "RestRetryPolicy",
    "RestSession",
    "RestSettings",
    "RestTimeouts",
    "list_models",
]
