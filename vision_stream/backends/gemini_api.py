"""Facts about the Gemini API that both Gemini paths (Live and REST) share.

Hosts, the API version, model ids and their normalisation, media resolutions,
how the key is sent, and how a proto3 JSON ``Duration`` is read: one place, so
the Live WebSocket backend, the REST snapshot backend, the model catalogue and
the snapshot RPC cannot drift apart (LIVE_API.md §1-2). Pure values and
functions: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from ..errors import UsageError

__all__ = [
    "API_KEY_HEADER",
    "API_VERSION",
    "API_VERSIONS",
    "DEFAULT_LIVE_MODEL",
    "DEFAULT_SNAPSHOT_MODEL",
    "EPHEMERAL_TOKEN_PREFIX",
    "GEMINI_REST_BASE",
    "GEMINI_WS_BASE",
    "MEDIA_RESOLUTIONS",
    "api_key_headers",
    "bare_model_id",
    "check_api_version",
    "http_base",
    "live_ws_path",
    "parse_duration",
]

GEMINI_REST_BASE = "https://generativelanguage.googleapis.com"
GEMINI_WS_BASE = "wss://generativelanguage.googleapis.com"
# The versions Google serves the Gemini API on (Live, REST and the models list alike).
API_VERSIONS = ("v1", "v1beta", "v1alpha")
# The official SDK's default for the Developer API: google-genai 3.6.1,
# google/genai/_api_client.py ``GOOGLE_AI_API_DEFAULT_VERSION = 'v1'`` (used when
# neither ``HttpOptions.api_version`` nor GOOGLE_GENAI_API_VERSION is set).
API_VERSION = "v1"
# Ephemeral tokens are named ``auth_tokens/<id>`` (``POST /v1alpha/auth_tokens``).
EPHEMERAL_TOKEN_PREFIX = "auth_tokens/"
DEFAULT_LIVE_MODEL = "gemini-3.8-live"
DEFAULT_SNAPSHOT_MODEL = "gemini-flash-latest"  # an alias that follows the newest Flash (LIVE_API.md §2)
MEDIA_RESOLUTIONS = ("MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH")
# The key travels in this header only, never in a URL (URLs end up in logs and proxies).
API_KEY_HEADER = "x-goog-api-key"


def api_key_headers(api_key: str) -> dict[str, str]:
    """The request headers that carry ``api_key`` (none when it is empty). Never log these."""
    return {API_KEY_HEADER: api_key} if api_key else {}


def check_api_version(version: str) -> str:
    """``version`` when Google serves it, else a ``UsageError`` naming the setting and the choices.

    One check for the Live settings, the REST settings and the models list: a
    wrong version would otherwise show up only as an HTTP 404 at the first call.
    """
    if version not in API_VERSIONS:
        raise UsageError(f"api_version (--api-version) must be one of {', '.join(API_VERSIONS)}, "
                         f"got {version[:40]!r}")
    return version


def live_ws_path(version: str, *, constrained: bool = False) -> str:
    """The Live WebSocket path for ``version``, as the official SDK builds it (google/genai/live.py).

    ``constrained`` is ``BidiGenerateContentConstrained``, the method that accepts
    an ephemeral token (``Authorization: Token auth_tokens/...``) instead of a key.
    """
    method = "BidiGenerateContentConstrained" if constrained else "BidiGenerateContent"
    return f"/ws/google.ai.generativelanguage.{version}.GenerativeService.{method}"


def bare_model_id(name: str) -> str:
    """The model id in any spelling of a model name: the last path segment, stripped.

    A Gemini model id never contains ``/``, so ``gemini-x``, ``models/gemini-x``,
    ``publishers/google/models/gemini-x`` and a full Vertex resource name
    (``projects/p/locations/l/publishers/google/models/gemini-x``) all name
    ``gemini-x``. One rule for every caller (capabilities lookup, REST URLs,
    Live setup, the catalogue, the snapshot RPC's reply) so they agree on what
    a name means.
    """
    return name.rsplit("/", 1)[-1].strip()


def http_base(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` for REST calls, WebSocket schemes mapped to HTTP
    (``ws`` -> ``http``, ``wss`` -> ``https``): Google serves both APIs from one host, and
    the loopback emulator serves both on one port."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


# proto3 JSON Duration: optional sign, decimal seconds ("34s", "0.5s", ".5s", "-1.5s"), suffix "s".
_DURATION = re.compile(r"^\s*(-?(?:\d+(?:\.\d*)?|\.\d+))s\s*$")


def parse_duration(value: object) -> float | None:
    """A proto3 JSON ``Duration`` in seconds; None when absent or not a duration.

    The contract (one for Live's ``goAway.timeLeft`` and REST's
    ``RetryInfo.retryDelay``): accepted are the canonical string form
    (``"34s"``, ``"0.500s"``, ``".5s"``, negative allowed) and the
    ``{"seconds", "nanos"}`` object form (numbers or decimal strings, as
    proto3 JSON writes int64). Anything else, including a bare number (the
    JSON mapping of Duration is always a string), is None: a malformed
    duration from a peer means "unknown", so the caller falls back to its own
    default instead of failing a working connection over a hint.
    """
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match.group(1)) if match else None
    if isinstance(value, Mapping):
        seconds, nanos = _integer(value.get("seconds", 0)), _integer(value.get("nanos", 0))
        if seconds is None or nanos is None:
            return None
        return seconds + nanos / 1e9
    return None


def _integer(value: object) -> int | None:
    """An int64/int32 as proto3 JSON writes it (a number or a decimal string); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
