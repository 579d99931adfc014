"""Choosing a backend by name: ``auto``, ``live``, ``rest`` or ``local``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..redact import Secret
from .base import Backend

BACKEND_NAMES = ("auto", "live", "rest", "local")


@dataclass(frozen=True, kw_only=True, slots=True)
class BackendOptions:
    """Everything needed to reach the remote backends; read once from flags/env at the entry point.

    api_key: Gemini API key (never printed).
    live_url: base URL of the Live API WebSocket endpoint (None: Google's).
    rest_url: base URL of the REST API (None: Google's).
    live_model / snapshot_model: model names; any name may be configured.
    """

    api_key: Secret | None = None
    live_url: str | None = None
    rest_url: str | None = None
    live_model: str = "gemini-3.8-live"
    snapshot_model: str = "gemini-flash-latest"


def resolve_name(name: str, options: BackendOptions) -> str:
    """``auto`` means live when a key is configured, else the offline analyzer."""
    if name not in BACKEND_NAMES:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        return "live" if options.api_key else "local"
    return name


def make_backend(name: str, options: BackendOptions) -> Backend:
    name = resolve_name(name, options)
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name in ("live", "rest") and not options.api_key:
        raise UsageError(f"backend {name!r} needs an API key (set GEMINI_API_KEY or GOOGLE_API_KEY)")
    raise UsageError(f"backend {name!r} is not available in this build yet")
