"""The backend factory: choosing a backend by name (``auto``, ``live``, ``rest`` or ``local``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..redact import Secret
from .base import Backend
from .gemini_api import API_VERSION, DEFAULT_LIVE_MODEL, DEFAULT_SNAPSHOT_MODEL

if TYPE_CHECKING:
    from .gemini_rest import GeminiRestBackend

BACKEND_NAMES = ("auto", "live", "rest", "local")


@dataclass(frozen=True, kw_only=True, slots=True)
class BackendOptions:
    """Everything needed to reach the remote backends; read once from flags/env at the entry point.

    api_key: Gemini API key (never printed).
    live_url: base URL of the Live API WebSocket endpoint (None: Google's).
    rest_url: base URL of the REST API (None: Google's).
    live_model / snapshot_model: model names; any name may be configured.
    rest_requests_per_minute: client-side REST rate limit (Gemini Flash free tier: 10).
    api_version: the Gemini API version of Live, REST and the models list alike (``--api-version``).
    stall_timeout: seconds Live may leave a prompt unanswered before the connection counts as
        stalled (``--stall-timeout``; None: ``LiveTimeouts.response``).
    keepalive: seconds of client quiet after which Live sends an application keepalive
        (``--keepalive``; 0: off; None: ``LiveSettings.keepalive_interval``).
    verify_model: the REST model of second opinions on ``verify`` conditions ("": snapshot_model).
    """

    api_key: Secret | None = None
    live_url: str | None = None
    rest_url: str | None = None
    live_model: str = DEFAULT_LIVE_MODEL
    snapshot_model: str = DEFAULT_SNAPSHOT_MODEL
    rest_requests_per_minute: float = 10.0
    api_version: str = API_VERSION
    stall_timeout: float | None = None
    keepalive: float | None = None
    verify_model: str = ""  # the second opinion's REST model (conditions/verify.py; "": snapshot_model)


def resolve_name(name: str, options: BackendOptions) -> str:
    """``auto`` means live when a key is configured, else the offline analyzer."""
    if name not in BACKEND_NAMES:
        raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        return "live" if options.api_key else "local"
    return name


def make_backend(name: str, options: BackendOptions) -> Backend:
    """``local``: offline; ``rest``: REST snapshots; ``live``: plain Live; ``auto`` with a key:
    the failover chain live -> rest -> local (without a key: local)."""
    requested = name
    name = resolve_name(name, options)
    if name == "local":
        from .local import LocalBackend

        return LocalBackend()
    if name in ("live", "rest") and not options.api_key:
        raise UsageError(f"backend {name!r} needs an API key (set GEMINI_API_KEY or GOOGLE_API_KEY)")
    if name == "rest":
        return make_rest_backend(options)
    if name == "live" and requested == "live":
        # An explicit --backend live is the plain Live backend: it never switches.
        # Outages are retried for as long as the session runs (each failed attempt
        # is an error event); a permanent refusal (bad key, unknown model) fails loudly.
        return make_live_backend(options)
    # auto with a key: the failover chain live -> REST -> offline (backends/failover.py).
    from .failover import FailoverBackend, Link
    from .local import LocalBackend

    return FailoverBackend([
        Link("live", make_live_backend(options, in_chain=True)),
        Link("rest", make_rest_backend(options)),
        Link("local", LocalBackend()),
    ])


@functools.lru_cache(maxsize=8)
def make_rest_backend(options: BackendOptions) -> GeminiRestBackend:
    """The REST snapshot backend (``--rest-url``, ``--snapshot-model``).

    One instance per options value (cached): REST quotas are per project, so
    every session and snapshot of a process shares one rate limiter and one
    view of quota holds, daily exhaustion and a rejected key.
    """
    from .gemini_rest import GeminiRestBackend, RestSettings

    key = options.api_key.reveal() if options.api_key else ""
    return GeminiRestBackend(RestSettings(base_url=options.rest_url, api_key=key, model=options.snapshot_model,
                                          requests_per_minute=options.rest_requests_per_minute,
                                          api_version=options.api_version))


def make_live_backend(options: BackendOptions, *, in_chain: bool = False) -> Backend:
    """The Live backend (``--live-url``, ``--model``).

    Alone (``--backend live``) it retries an outage for as long as the session
    runs, with capped jittered backoff (``ReconnectPolicy()``: 0.5 s doubling to
    30 s), like a camera. In the failover chain it gives up sooner (two
    consecutive failures, no long quota wait): REST takes over meanwhile and
    the chain probes Live back.
    """
    from .gemini_live import GeminiLiveBackend, LiveSettings, LiveTimeouts, ReconnectPolicy

    key = options.api_key.reveal() if options.api_key else ""
    stall = {} if options.stall_timeout is None else {"response": options.stall_timeout}
    if in_chain:
        # Measured against the emulator: a refused reconnect hands over to REST in ~0.1-0.3 s.
        # One opening attempt: an unreachable Live costs one connect timeout (3 s), not two.
        reconnect = ReconnectPolicy(max_attempts=2, open_attempts=1, base_backoff=0.25, max_backoff=1.0,
                                    quota_backoff=0.0)
        timeouts = LiveTimeouts(setup=5.0, **stall)
    else:
        reconnect, timeouts = ReconnectPolicy(), LiveTimeouts(**stall)
    settings = LiveSettings(base_url=options.live_url, api_key=key, model=options.live_model,
                            api_version=options.api_version, reconnect=reconnect, timeouts=timeouts)
    if options.keepalive is not None:
        settings = replace(settings, keepalive_interval=options.keepalive)
    return GeminiLiveBackend(settings)
