"""Knobs of the Live emulator: limits, pacing and injected faults, as one value object.

Settable from tests (keyword arguments) and from the CLI as ``key=value``
strings (:meth:`EmulatorKnobs.from_strings`), e.g.::

    lifetime=1 notice=0.3 latency=0.05 fault=close1011@0.5/2,4 refuse=404

Fault kinds: ``close1011`` (Internal error), ``quota`` (1011 quota text),
``drop`` (abort TCP, the client sees 1006), ``stall`` (stop reading and
answering), ``goaway`` (an early goAway). ``@T`` is seconds after
``setupComplete``; ``/N,M`` limits it to those connection numbers (1-based,
counting every upgrade the emulator accepted); none means every connection.

Tool-call faults (``toolcall_then=goaway|goaway_same|1011|drop``) strike right after the
emulator's first ``toolCall``: the moment a call is most easily lost. ``goaway_same``
puts the ``goAway`` in the SAME WebSocket message as the ``toolCall`` (both fields of
one server message), so the client learns of the rotation before it could have run
anything to answer the call: only a drain of the old connection saves the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace

FAULT_KINDS = ("close1011", "quota", "drop", "stall", "goaway")
TOOLCALL_FAULTS = ("", "goaway", "goaway_same", "1011", "drop")



def knob_words(items: Iterable[str], what: str) -> Iterator[tuple[str, str]]:
    """``(name, value)`` of every ``key=value`` word in ``items`` (CLI knob strings);
    ``-`` in names reads as ``_``."""
    for item in items:
        for word in item.split():
            name, sep, value = word.partition("=")
            if not sep:
                raise ValueError(f"{what} must be key=value, got {word!r}")
            yield name.strip().replace("-", "_"), value

@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """One injected fault: ``kind`` at ``at`` seconds after setup on ``connections`` (empty: all)."""

    kind: str
    at: float
    connections: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.at < 0:
            raise ValueError("fault time must be >= 0 seconds")

    def applies_to(self, connection: int) -> bool:
        return not self.connections or connection in self.connections

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``kind@seconds[/n,m]``, e.g. ``close1011@0.5/2,4``."""
        kind, _, rest = text.partition("@")
        at_text, _, conns = rest.partition("/")
        connections = tuple(int(c) for c in conns.split(",") if c.strip()) if conns else ()
        return cls(kind=kind.strip(), at=float(at_text or 0), connections=connections)


@dataclass(frozen=True, kw_only=True, slots=True)
class EmulatorKnobs:
    """How the emulated Google server behaves. Times are seconds.

    api_keys: accepted ``x-goog-api-key`` values; empty accepts any non-empty key.
    lifetime: connection age at which ``goAway`` is sent (Google: about 10 min).
    notice: ``goAway.timeLeft``; the connection is closed (1000) when it runs out.
    av_session_limit / audio_session_limit: session length without context
        compression for audio+video / audio-only input (Google: 2 min / 15 min).
    latency: delay before every server message.
    read_delay: delay before reading each client message (a slow consumer).
    speech_pace: delay between transcription chunks of an answer.
    tool_timeout: how long a turn waits for the toolResponse of its calls.
    frames_per_turn: frames kept for the next answer (the newest win).
    max_queue: websockets' incoming queue (small -> TCP backpressure sooner).
    refuse_status: refuse the upgrade with this HTTP status (404, 403, 503...).
    refuse_count: refuse only the first N upgrades (0: all).
    faults: injected faults (see module docstring).
    record_limit: client messages kept for inspection (oldest dropped).
    call_function: the function the model calls for an event it sees in new frames
        (declared by the client; else no call).
    toolcall_then: right after the first ``toolCall``: ``goaway`` (a goAway with
        ``timeLeft`` = notice, closed 1000 when it runs out), ``goaway_same`` (that goAway
        inside the toolCall's own message), ``1011`` (close 1011
        Internal error) or ``drop`` (abort TCP, no close frame: the client sees 1006).
    reissue_calls: on a resumed connection, call again (same ids) the functions the
        session left unanswered when its last connection died (1 on, 0 off).
    idle_reap: drop TCP (the client sees 1006) after this many seconds without a client
        message (WebSocket pings do not count, as with middleboxes); 0 off.
    Always on: audio while a BLOCKING call awaits its answer closes 1008 "The operation
    was aborted" (as in the field).
    """

    api_keys: tuple[str, ...] = ()
    lifetime: float = 600.0
    notice: float = 50.0
    av_session_limit: float = 120.0
    audio_session_limit: float = 900.0
    latency: float = 0.0
    read_delay: float = 0.0
    speech_pace: float = 0.0
    tool_timeout: float = 10.0
    frames_per_turn: int = 16
    max_queue: int = 16
    refuse_status: int | None = None
    refuse_count: int = 0
    faults: tuple[Fault, ...] = field(default_factory=tuple)
    record_limit: int = 100_000
    call_function: str = "report_event"
    toolcall_then: str = ""
    reissue_calls: bool = False
    idle_reap: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lifetime", "notice", "av_session_limit", "audio_session_limit", "tool_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds")
        for name in ("latency", "read_delay", "speech_pace"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds")
        if self.frames_per_turn < 1 or self.max_queue < 1 or self.record_limit < 1:
            raise ValueError("frames_per_turn, max_queue and record_limit must be >= 1")
        if self.toolcall_then not in TOOLCALL_FAULTS:
            raise ValueError(f"toolcall_then must be one of {TOOLCALL_FAULTS[1:]}, got {self.toolcall_then!r}")
        if self.idle_reap < 0:
            raise ValueError("idle_reap must be >= 0 seconds (0: off)")
        if self.refuse_status is not None and not 400 <= self.refuse_status <= 599:
            raise ValueError("refuse_status must be an HTTP error status (4xx/5xx)")

    def scaled(self, factor: float) -> EmulatorKnobs:
        """Every Google time limit multiplied by ``factor`` (tests run minutes in seconds)."""
        return replace(
            self,
            lifetime=self.lifetime * factor,
            notice=self.notice * factor,
            av_session_limit=self.av_session_limit * factor,
            audio_session_limit=self.audio_session_limit * factor,
        )

    @classmethod
    def from_strings(cls, items: Iterable[str]) -> EmulatorKnobs:
        """Build from ``key=value`` strings (CLI). ``fault=`` and ``key=`` may repeat;
        ``scale=F`` scales the Google limits; ``refuse=404[:N]``."""
        values: dict[str, object] = {}
        faults: list[Fault] = []
        keys: list[str] = []
        scale: float | None = None
        known = {f.name: f for f in fields(cls)}
        for name, value in knob_words(items, "emulator knob"):
            if name == "fault":
                faults.append(Fault.parse(value))
            elif name in ("key", "api_key"):
                keys.append(value)
            elif name == "scale":
                scale = float(value)
            elif name == "refuse":
                status, _, count = value.partition(":")
                values["refuse_status"] = int(status)
                values["refuse_count"] = int(count or 0)
            elif name in known and name not in ("faults", "api_keys"):
                values[name] = _knob_value(str(known[name].type), value)
            else:
                raise ValueError(f"unknown emulator knob {name!r}")
        knobs = cls(api_keys=tuple(keys), faults=tuple(faults), **values)  # type: ignore[arg-type]
        return knobs.scaled(scale) if scale is not None else knobs


def _knob_value(kind: str, value: str) -> object:
    """A CLI knob's text as its field's type (``kind``: the annotation, a string)."""
    if kind == "str":
        return value
    if kind == "bool":
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return int(value) if kind in ("int", "int | None") else float(value)
