"""Settings of the Live backend: typed, keyword-only, validated, secrets redacted.

The environment is read by the CLI, never here. ``base_url`` is a setting so
tests and offline users point the client at the loopback emulator
(``ws://127.0.0.1:8765``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ...config import check
from ...net import is_loopback_url
from ...redact import PLACEHOLDER, redact_url
from ...retry import RetryPolicy
from ..gemini_api import (
    API_VERSION,
    DEFAULT_LIVE_MODEL,
    EPHEMERAL_TOKEN_PREFIX,
    GEMINI_REST_BASE,
    GEMINI_WS_BASE,
    MEDIA_RESOLUTIONS,
    api_key_headers,
    bare_model_id,
    check_api_version,
    http_base,
    live_ws_path,
)
from .endings import Ending, is_quota_ending


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveTimeouts:
    """Timeouts of the Live driver, seconds.

    connect: TCP + TLS + WebSocket upgrade (websockets' ``open_timeout``):
        seconds, so an unreachable Google (dropped SYNs, a proxy that never
        answers) fails the attempt quickly and the failover chain moves on.
    setup: from sending ``setup`` to ``setupComplete``.
    response: the stall timeout (``--stall-timeout``): silence from the server
        while we wait for it (a prompt or tool turn outstanding), counted from
        the prompt or the last server frame, after which the connection counts
        as stalled: a retryable ``stalled`` error event, then a reconnect that
        asks the unanswered prompt again. A Live answer normally starts within
        1-2 s, so 8 s is well past a slow turn and far from the 30 s a user
        waited before.
    close: waiting for the closing handshake.
    ping_interval / ping_timeout: WebSocket keepalive. The timeout is generous
        on purpose: websockets closes with 1011 itself when a pong is late, and a
        briefly busy event loop must not kill an hours-long session (the
        "self-inflicted 1011" of the Live API issue trackers).
    close_flush: how long ``close()`` waits for the final turn to finish.
    go_away_drain: after a ``goAway``, how long the old connection may still write
        the tool answers and audio owed on it before it closes (never past the
        server's ``timeLeft``).
    reissue_wait: after a reconnect, how long the server has to re-issue (same id)
        a function call whose connection died before we answered; then the call is
        reported lost (a ``tool_call_lost`` error event naming it).
    """

    connect: float = 3.0
    setup: float = 10.0
    response: float = 8.0
    close: float = 2.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 60.0
    close_flush: float = 15.0
    go_away_drain: float = 1.0
    reissue_wait: float = 2.0

    def __post_init__(self) -> None:
        for name in ("connect", "setup", "response", "close", "close_flush", "go_away_drain", "reissue_wait"):
            check(getattr(self, name) > 0, f"timeout {name} must be > 0 seconds")
        for name in ("ping_interval", "ping_timeout"):
            value = getattr(self, name)
            check(value is None or value > 0, f"{name} must be > 0 seconds or None")


@dataclass(frozen=True, kw_only=True, slots=True)
class ReconnectPolicy:
    """Retry policy for transient failures (1000 without goAway, 1006, 1011, refused).

    The delays are the shared :class:`~vision_stream.retry.RetryPolicy`
    (:attr:`retry`); what is Live's own is the quota wait, the opening budget
    and the goAway margin.

    max_attempts: consecutive failed connection attempts of a running session
        before it gives up; None (the default) retries for as long as the
        session runs, like an NVR with a camera, and reports every failed
        attempt as a retryable ``backend_unavailable`` error event. A bounded
        policy is for a link with something behind it (the failover chain's
        Live link): it reports once, when it gives up. Permanent endings (bad
        key, unknown model, accepted-then-closed) end the session at once either way.
    open_attempts: attempts for the first connection, before the session
        exists (never more than ``max_attempts``): a wrong URL or a service
        that is down at start fails the session's start visibly instead of
        leaving it waiting with no event to show.
    base_backoff / max_backoff: seconds; delay = min(max, base * 2**(n-1)),
        jittered but never above that nominal delay nor below
        ``nominal * (1 - jitter)`` (see :attr:`retry`).
    quota_backoff: seconds to wait after a 1011 that says the quota is exhausted.
    stable_after: seconds a connection must live before the attempt count resets.
    go_away_margin: seconds before a ``goAway`` deadline at which we reconnect
        even if the model is mid-turn.
    """

    max_attempts: int | None = None
    open_attempts: int = 6
    base_backoff: float = 0.5
    max_backoff: float = 30.0
    quota_backoff: float = 60.0
    jitter: float = 0.5
    stable_after: float = 30.0
    go_away_margin: float = 5.0

    def __post_init__(self) -> None:
        check(self.max_attempts is None or self.max_attempts >= 1,
               "reconnect max_attempts must be >= 1 (or None: retry for as long as the session runs)")
        check(self.open_attempts >= 1, "reconnect open_attempts must be >= 1")
        check(0 <= self.base_backoff <= self.max_backoff, "need 0 <= base_backoff <= max_backoff")
        check(self.quota_backoff >= 0, "quota_backoff must be >= 0")
        check(0 <= self.jitter <= 1, "jitter must be in [0, 1]")
        check(self.stable_after >= 0 and self.go_away_margin >= 0, "stable_after/go_away_margin must be >= 0")

    @property
    def retry(self) -> RetryPolicy:
        """These delays as the shared policy.

        ``jitter`` here means "up to this fraction *shorter*" (a reconnect never
        waits longer than nominal), while :class:`RetryPolicy` jitters around
        its centre: so the centre is ``nominal * (1 - jitter/2)`` with
        ``+/- jitter/(2 - jitter)`` of it, which stays inside that interval.
        """
        initial = max(self.base_backoff, 1e-3) * (1.0 - self.jitter / 2)
        return RetryPolicy(
            initial_delay=initial,
            max_delay=max(self.max_backoff, initial),
            multiplier=2.0,
            jitter=self.jitter / (2.0 - self.jitter),
            max_attempts=self.max_attempts,
            stable_after=self.stable_after,
        )

    def quota_wait(self, ending: Ending) -> float:
        """The least wait after ``ending``: ``quota_backoff`` for a quota refusal, else 0."""
        return self.quota_backoff if is_quota_ending(ending) else 0.0

    @property
    def opening_attempts(self) -> int:
        """Attempts allowed for the first connection: ``open_attempts``, capped by ``max_attempts``."""
        if self.max_attempts is None:
            return self.open_attempts
        return min(self.open_attempts, self.max_attempts)


@dataclass(frozen=True, kw_only=True, slots=True)
class VertexAuth:
    """Vertex AI instead of the Gemini API: project, location and an OAuth bearer token."""

    project: str
    location: str = "us-central1"
    access_token: str = field(default="", repr=False)
    api_version: str = "v1beta1"

    def __post_init__(self) -> None:
        check(bool(self.project.strip()), "vertex project must not be empty")
        check(bool(self.location.strip()), "vertex location must not be empty")

    def __repr__(self) -> str:
        token = PLACEHOLDER if self.access_token else "''"
        return (
            f"VertexAuth(project={self.project!r}, location={self.location!r}, "
            f"access_token={token}, api_version={self.api_version!r})"
        )

    @property
    def host(self) -> str:
        # Location "global" has no regional prefix (LIVE_API.md "Endpoints and auth").
        if self.location == "global":
            return "aiplatform.googleapis.com"
        return f"{self.location}-aiplatform.googleapis.com"


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveSettings:
    """Everything the Live backend needs beyond the per-session settings.

    base_url: ``wss://host[:port]`` (the standard path is appended) or a full
        endpoint URL with a path; ``http(s)`` is mapped to ``ws(s)``. None means
        the Gemini API (or the Vertex host when ``vertex`` is set).
    api_version: "v1" (the official SDK's default), "v1beta" or "v1alpha" (Gemini API).
    api_key: Gemini API key, sent in the ``x-goog-api-key`` header only; never
        printed (``repr`` shows ``***``).
    ephemeral_token: an ``auth_tokens/...`` token minted by a server holding the
        key (``POST /v1alpha/auth_tokens``), used instead of ``api_key``: it goes
        in ``Authorization: Token ...`` to ``BidiGenerateContentConstrained``, the
        only method that accepts it (v1alpha only, as Google serves it).
    vertex: use Vertex AI with a bearer token instead of an API key.
    model: model id (``models/`` optional); any name works, unknown families get
        safe defaults (see ``models.py``).
    media_resolution: ``MEDIA_RESOLUTION_LOW`` (64 tokens a frame) by default.
    max_fps: frames written to the socket per second of *wall* time, at most:
        the service's rate limit. The sampler's ``SamplingPolicy.max_fps`` caps
        frames per second of *media* time; paced, the two agree, but in a fast
        replay (``--fast``) only this one bounds what the service receives.
    compression: context-window compression (``slidingWindow``); without it an
        audio+video session ends after about 2 minutes.
    compression_trigger_tokens: ``contextWindowCompression.triggerTokens``. Live
        bills the whole context again every turn (LIVE_API.md "Cost"), so the
        window, not the clip, sets the bill: 16,384 (about 2 minutes of LOW video
        and audio, plenty for running commentary) bills ~0.1x what the 131,072
        window does per camera-hour (bench/tokens.py, RESULTS.md). None: the
        server's default (the whole window).
    voice: prebuilt voice name, "" for the default.
    audio_buffer_chunks: audio chunks held while the socket is slow or
        reconnecting (oldest dropped beyond, counted).
    event_queue: events held for a slow consumer before the receiver waits.
    keepalive_interval: seconds without a client message after which a quiet
        connection gets an application keepalive (``realtimeInput.audioStreamEnd``:
        no turn, no tokens; see ``schedule.SendSchedule``), so middleboxes do not
        reap it as idle (about 126 s, close 1006). 0 turns it off. WebSocket pings
        (``timeouts.ping_interval``) still run: they detect a dead peer.
    max_message_bytes: largest server message accepted (websockets ``max_size``).
    """

    base_url: str | None = None
    api_version: str = API_VERSION
    api_key: str = field(default="", repr=False)
    ephemeral_token: str = field(default="", repr=False)
    vertex: VertexAuth | None = None
    model: str = DEFAULT_LIVE_MODEL
    media_resolution: str = "MEDIA_RESOLUTION_LOW"
    max_fps: float = 2.0
    compression: bool = True
    compression_trigger_tokens: int | None = 16_384
    voice: str = ""
    temperature: float | None = None
    timeouts: LiveTimeouts = field(default_factory=LiveTimeouts)
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    audio_buffer_chunks: int = 64
    event_queue: int = 1024
    keepalive_interval: float = 20.0
    max_message_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        resolution = self.media_resolution.upper()
        if not resolution.startswith("MEDIA_RESOLUTION_"):
            resolution = f"MEDIA_RESOLUTION_{resolution}"
        check(resolution in MEDIA_RESOLUTIONS, f"media_resolution must be one of {MEDIA_RESOLUTIONS}")
        object.__setattr__(self, "media_resolution", resolution)
        check(bool(self.model.strip()), "live model must not be empty")
        check_api_version(self.api_version)
        if self.ephemeral_token:
            check(self.ephemeral_token.startswith(EPHEMERAL_TOKEN_PREFIX),
                  f"ephemeral_token must be an {EPHEMERAL_TOKEN_PREFIX}... name")
            check(self.api_version == "v1alpha" and self.vertex is None,
                  "ephemeral tokens work on the Gemini API's api_version v1alpha only (--api-version v1alpha)")
        check(0 < self.max_fps <= 30, f"max_fps must be in (0, 30], got {self.max_fps}")
        check(self.audio_buffer_chunks >= 1 and self.event_queue >= 1, "buffer sizes must be >= 1")
        check(self.keepalive_interval >= 0, "keepalive_interval must be >= 0 seconds (0: off)")
        check(self.max_message_bytes >= 64 * 1024, "max_message_bytes must be >= 64 KiB")
        if self.base_url is not None:
            scheme = urlsplit(self.base_url).scheme
            check(scheme in ("ws", "wss", "http", "https"),
                   f"base_url must be ws://, wss://, http:// or https://, got {scheme!r}")

    def __repr__(self) -> str:
        key = PLACEHOLDER if self.api_key else "''"
        return (
            f"LiveSettings(base_url={redact_url(self.ws_base)!r}, api_version={self.api_version!r}, "
            f"api_key={key}, vertex={self.vertex!r}, model={self.model!r}, "
            f"media_resolution={self.media_resolution!r}, max_fps={self.max_fps}, compression={self.compression}, "
            f"timeouts={self.timeouts!r}, reconnect={self.reconnect!r})"
        )

    # ---- derived values ------------------------------------------------------------------

    @property
    def ws_base(self) -> str:
        if self.base_url is None:
            return f"wss://{self.vertex.host}" if self.vertex is not None else GEMINI_WS_BASE
        parts = urlsplit(self.base_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))

    @property
    def endpoint(self) -> str:
        """The WebSocket URL (no secret in it: the key goes in a header)."""
        base = self.ws_base
        parts = urlsplit(base)
        if parts.path not in ("", "/"):
            return base  # a full endpoint URL was given
        if self.vertex is not None:
            path = f"/ws/google.cloud.aiplatform.{self.vertex.api_version}.LlmBidiService/BidiGenerateContent"
        else:
            path = live_ws_path(self.api_version, constrained=bool(self.ephemeral_token))
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

    @property
    def rest_base(self) -> str:
        """``https://host`` for REST calls (``models`` listing) on the same host."""
        if self.base_url is None and self.vertex is None:
            return GEMINI_REST_BASE
        return http_base(self.ws_base)

    @property
    def model_resource(self) -> str:
        """``setup.model``: ``models/<id>``, or the full Vertex resource name."""
        model_id = bare_model_id(self.model)
        if self.vertex is not None:
            if self.model.startswith("projects/"):
                return self.model
            vertex = self.vertex
            return f"projects/{vertex.project}/locations/{vertex.location}/publishers/google/models/{model_id}"
        return f"models/{model_id}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback_url(self.ws_base)

    def headers(self) -> dict[str, str]:
        """Upgrade headers carrying the credential. Never log these."""
        if self.vertex is not None:
            return {"Authorization": f"Bearer {self.vertex.access_token}"} if self.vertex.access_token else {}
        if self.ephemeral_token:
            # The official SDK's header for BidiGenerateContentConstrained (google/genai/live.py).
            return {"Authorization": f"Token {self.ephemeral_token}"}
        return api_key_headers(self.api_key)

    def secrets(self) -> tuple[str, ...]:
        """Every secret these settings hold, for :func:`vision_stream.redact.scrub`."""
        found = [self.api_key, self.ephemeral_token]
        if self.vertex is not None:
            found.append(self.vertex.access_token)
        return tuple(s for s in found if s)

