"""Typed, validated configuration values.

Keyword-only, frozen, validated on construction (:func:`check`, raising
``UsageError``), with a readable repr. Each default lives in its dataclass
only: callers pass the values they were given and leave the rest out
(:meth:`SamplingPolicy.updated`, ``dataclasses.replace``). The environment is
read once, at the entry point (``vision_stream.cli``), never here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .backends.gemini_api import MEDIA_RESOLUTIONS
from .conditions.model import Condition, HealthSettings, check_conditions
from .errors import UsageError

DEFAULT_COMMENTARY_INTERVAL = 10.0  # seconds
DEFAULT_LANGUAGE = "en-US"  # BCP-47
# Pictures a video decoder may hold at once: 16 H.264/HEVC reference frames
# plus FFmpeg's frame threads (automatic count capped at 16) and the one being
# output; each 1.5 bytes/pixel (YUV 4:2:0), plus one 3 bytes/pixel BGR copy.
DECODER_FRAMES_HELD = 16 + 16 + 1
DECODE_BYTES_PER_PIXEL = int(DECODER_FRAMES_HELD * 1.5 + 3)


def media_resolution_name(value: str) -> str:
    """``low``/``MEDIA_RESOLUTION_LOW`` (any case) -> ``MEDIA_RESOLUTION_LOW``; "" stays ""
    (the backend's own setting; Gemini's frame token cost: LOW about 64 a frame, MEDIUM
    about 256, LIVE_API.md "Cost"); anything else is a ``UsageError`` naming the choices."""
    name = value.strip().upper()
    if not name:
        return ""
    if not name.startswith("MEDIA_RESOLUTION_"):
        name = f"MEDIA_RESOLUTION_{name}"
    check(name in MEDIA_RESOLUTIONS,
          f"media_resolution must be low, medium or high ({', '.join(MEDIA_RESOLUTIONS)}), got {value[:40]!r}")
    return name


def check(condition: bool, message: str) -> None:
    """The one validation idiom of configuration objects: ``UsageError(message)``
    unless ``condition`` (a ``ValueError`` escaping a handler would be gRPC UNKNOWN)."""
    if not condition:
        raise UsageError(message)


@dataclass(frozen=True, kw_only=True, slots=True)
class SamplingPolicy:
    """Which frames go to the model, and how they are encoded.

    fps: base rate in frames per second of media time.
    max_fps: cap on the sampled rate including scene-change frames.
    scene_threshold: mean absolute luma change (0..1) on a small thumbnail that
        counts as a scene change.
    probe_fps: rate at which frames are checked for scene changes (thumbnail only).
    max_side: longest side of the encoded JPEG, pixels.
    jpeg_quality: JPEG quality 1..100.
    """

    fps: float = 1.0
    max_fps: float = 2.0
    scene_threshold: float = 0.3
    probe_fps: float = 5.0
    max_side: int = 768
    jpeg_quality: int = 80

    def __post_init__(self) -> None:
        check(0 < self.fps <= 30, f"sampling fps must be in (0, 30], got {self.fps}")
        check(self.max_fps >= self.fps, f"max_fps ({self.max_fps}) must be >= fps ({self.fps})")
        check(self.max_fps <= 30, f"max_fps must be <= 30, got {self.max_fps}")
        check(0 < self.scene_threshold <= 1, f"scene_threshold must be in (0, 1], got {self.scene_threshold}")
        check(0 < self.probe_fps <= 60, f"probe_fps must be in (0, 60], got {self.probe_fps}")
        check(16 <= self.max_side <= 4096, f"max_side must be in [16, 4096], got {self.max_side}")
        check(1 <= self.jpeg_quality <= 100, f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    def updated(self, **given: float | None) -> SamplingPolicy:
        """This policy with the ``given`` fields replaced; ``None`` means not given.

        The one place a policy is derived from what a user gave (flags, a
        client's SessionConfig, a cameras file): a new ``fps`` above the cap
        raises ``max_fps`` to it unless ``max_fps`` is given too; an explicit
        cap below ``fps`` is refused like any other bad value.
        """
        changes = {name: value for name, value in given.items() if value is not None}
        if "fps" in changes and "max_fps" not in changes:
            changes["max_fps"] = max(self.max_fps, changes["fps"])
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioPolicy:
    """Audio sent to backends: PCM16 mono at ``sample_rate`` Hz in ``chunk_ms`` chunks."""

    sample_rate: int = 16000
    chunk_ms: int = 50

    def __post_init__(self) -> None:
        check(20 <= self.chunk_ms <= 100, f"audio chunk_ms must be in [20, 100], got {self.chunk_ms}")
        check(8000 <= self.sample_rate <= 48000, f"audio sample_rate out of range: {self.sample_rate}")

    @property
    def chunk_samples(self) -> int:
        return self.sample_rate * self.chunk_ms // 1000


# The evidence a session keeps by default: 10 minutes, 64 MiB of JPEGs (and as
# much of packets), 3600 frames (10 minutes at 6 sampled frames a second).
EVIDENCE_SECONDS = 600.0
EVIDENCE_BYTES = 64 * 1024 * 1024
EVIDENCE_FRAMES = 3600


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Bounds on everything a session buffers.

    frame_slots: sampled frames waiting for the backend (1 = newest wins).
    audio_chunks: audio chunks waiting for the backend before the oldest drops.
    lossless_queue: items buffered when a session applies backpressure instead.
    event_retention: events kept per session for Subscribe(after_seq).
    max_sessions: concurrent sessions per server.
    max_message_bytes: largest gRPC message accepted.
    max_frame_pixels: largest frame, in pixels: pushed raw/encoded pictures,
        snapshots (checked on the image header, before decoding) and every
        decoded container frame (whatever the container header said).
    push_queue: pushed client messages waiting to be decoded.
    evidence_seconds / evidence_bytes / evidence_frames: the evidence a session
        keeps (issue 12): its sampled JPEGs (pipeline/frame_ring.py), at most this
        many media seconds AND bytes AND frames, and for sources with packets the
        compressed video of the same span (pipeline/packet_ring.py, its own
        ``evidence_bytes``): up to twice ``evidence_bytes`` in all.
    max_decode_bytes: memory budget of one session's decoded pictures. A video
        decoder holds up to ``DECODER_FRAMES_HELD`` pictures at once (H.264/HEVC
        references plus FFmpeg's frame threads) at 1.5 bytes/pixel (YUV 4:2:0),
        and the pipeline one BGR copy (3 bytes/pixel) of the frame it samples;
        ``decode_pixel_cap`` is the per-frame pixel cap that keeps that within
        the budget, and the decoder enforces it on every frame (FFmpeg's
        ``max_pixels``), so a stream cannot grow past it mid-way.
    """

    frame_slots: int = 1
    audio_chunks: int = 100
    lossless_queue: int = 64
    event_retention: int = 10_000
    max_sessions: int = 64
    max_message_bytes: int = 16 * 1024 * 1024
    max_frame_pixels: int = 4096 * 4096
    push_queue: int = 256
    max_decode_bytes: int = 1024 * 1024 * 1024
    evidence_seconds: float = EVIDENCE_SECONDS
    evidence_bytes: int = EVIDENCE_BYTES
    evidence_frames: int = EVIDENCE_FRAMES

    def with_evidence(self, *, minutes: float | None = None, megabytes: float | None = None) -> Limits:
        """These limits with the evidence ring set in an operator's units (``serve
        --evidence-minutes/--evidence-mb``, a camera's ``evidence_minutes/evidence_mb``);
        None keeps the current value. The frame count follows the minutes (6 sampled
        frames a second, as the defaults), so it never cuts the span short first."""
        if minutes is None and megabytes is None:
            return self
        for name, value in (("evidence_minutes", minutes), ("evidence_mb", megabytes)):
            if value is not None and not 0 < value <= 10_000_000:
                raise UsageError(f"{name} must be > 0, got {value:g}")
        seconds = self.evidence_seconds if minutes is None else minutes * 60.0
        return dataclasses.replace(
            self, evidence_seconds=seconds,
            evidence_bytes=self.evidence_bytes if megabytes is None else max(1, round(megabytes * 2**20)),
            evidence_frames=max(self.evidence_frames if minutes is None else EVIDENCE_FRAMES, math.ceil(seconds * 6)),
        )

    @property
    def decode_pixel_cap(self) -> int:
        """Largest decoded container frame, in pixels: ``max_frame_pixels``, lowered
        so the pictures a decoder may hold fit ``max_decode_bytes``."""
        return max(1, min(self.max_frame_pixels, self.max_decode_bytes // DECODE_BYTES_PER_PIXEL))

    def __post_init__(self) -> None:
        for name in (
            "frame_slots",
            "audio_chunks",
            "lossless_queue",
            "event_retention",
            "max_sessions",
            "max_message_bytes",
            "max_frame_pixels",
            "push_queue",
            "max_decode_bytes",
            "evidence_bytes",
            "evidence_frames",
        ):
            check(getattr(self, name) >= 1, f"limit {name} must be >= 1")
        check(self.evidence_seconds > 0, "limit evidence_seconds must be > 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class FunctionSpec:
    """A function the model may call (function calling), with a JSON-schema dict."""

    name: str
    description: str = ""
    parameters: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Resumption:
    """A configured camera's model session carried across a restart or a fleet takeover
    (issue 13): the server reads it from its event store and the Live backend uses it, so
    the backend never imports the store (store/continuity.py is the other end).

    handle: a stored Live resumption handle to present on the first connection (None: fresh).
    summary: what the session saw before (its last commentary), told to a fresh session.
    on_handle: called with each newer resumable handle the server issues (never raises).
    """

    handle: str | None = None
    summary: str = ""
    on_handle: Callable[[str], None] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionSettings:
    """What a backend session needs to know about the session it serves.

    voice / language / tools: the model's speech and built-in tools
    (``google_search``), checked against the model's capability table when the
    session opens (``backends/gemini_live/models.py``).
    media_resolution: ``MEDIA_RESOLUTION_LOW``/``MEDIUM``/``HIGH`` (``low`` ... accepted),
        or "" for the backend's own setting.
    """

    session_id: str
    source_description: str = ""
    commentary_interval: float = DEFAULT_COMMENTARY_INTERVAL
    persona: str = ""
    language: str = DEFAULT_LANGUAGE
    want_audio_out: bool = False
    functions: tuple[FunctionSpec, ...] = ()
    model: str = ""
    # Batch input (``--fast``, a Stream with ``lossless``): the backend waits instead of
    # dropping, so it sees the same frames and prompts as a real-time replay (backends.base).
    lossless: bool = False
    voice: str = ""
    media_resolution: str = ""
    tools: tuple[str, ...] = ()
    # Budget (pipeline/budget.py): 0 = none. Per hour of media time, estimated from prices.toml.
    max_cost_per_hour: float = 0.0
    max_tokens_per_hour: int = 0
    # Watch conditions (vision_stream.conditions): alerts when they become true;
    # health: the built-in camera-health conditions (on for live sources by default).
    conditions: tuple[Condition, ...] = ()
    health: HealthSettings = field(default_factory=HealthSettings)
    # Continuity across restarts (configured cameras with an event store); None: none.
    resumption: Resumption | None = None

    def __post_init__(self) -> None:
        check(
            0.5 <= self.commentary_interval <= 3600,
            f"commentary_interval must be in [0.5, 3600] seconds, got {self.commentary_interval}",
        )
        check(self.max_cost_per_hour >= 0, f"max_cost_per_hour must be >= 0 dollars, got {self.max_cost_per_hour}")
        check(self.max_tokens_per_hour >= 0, f"max_tokens_per_hour must be >= 0, got {self.max_tokens_per_hour}")
        object.__setattr__(self, "media_resolution", media_resolution_name(self.media_resolution))
        object.__setattr__(self, "tools", tuple(t.strip().lower() for t in self.tools))
        object.__setattr__(self, "conditions", check_conditions(self.conditions))
