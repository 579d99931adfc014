"""Knobs of the REST emulator: pacing, quota answers and injected faults, as one value object.

Settable from tests (keyword arguments) and from the CLI as ``key=value``
strings (:meth:`RestKnobs.from_strings`; ``vision-stream emulate`` routes words
with a ``rest.`` prefix here), e.g.::

    fault=429x3 retry_delay=2 chunk_delay=0.1 key=AIza...

Faults (:class:`RestFault`, CLI form ``kind[xN][+S]``: the next N requests,
0/absent = all, after skipping S): ``429`` (per-minute quota, ``RetryInfo``
``retryDelay`` = ``retry_delay``), ``perday`` (``PerDay`` quota id; carries a
misleading retryDelay too), ``500``, ``503``, ``badkey`` (400
``API_KEY_INVALID``), ``forbidden`` (403), ``safety`` (``finishReason``
SAFETY), ``blocked`` (``promptFeedback.blockReason``), ``midstream`` (SSE: a
first chunk, then an ``error`` object in the stream), ``stall`` (headers, then
nothing; non-streaming: nothing at all), ``reset`` (close without answering).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from .live_knobs import knob_words

VERIFY_MODES = ("judge", "agree", "reject")
FAULT_KINDS = ("429", "perday", "500", "503", "badkey", "forbidden", "safety", "blocked", "midstream", "stall",
               "reset")


@dataclass(frozen=True, kw_only=True, slots=True)
class RestFault:
    """``kind`` on the next ``count`` requests (0: every one) after skipping ``after`` requests."""

    kind: str
    count: int = 0
    after: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"REST fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if self.count < 0 or self.after < 0:
            raise ValueError("REST fault count/after must be >= 0")

    @classmethod
    def parse(cls, text: str) -> RestFault:
        """``kind[xN][+S]``, e.g. ``429x3``, ``503``, ``perday+2``."""
        match = re.fullmatch(r"(\d{3}|[a-z]+)(?:x(\d+))?(?:\+(\d+))?", text.strip())
        if match is None:
            raise ValueError(f"REST fault must look like kind[xN][+S], got {text!r}")
        return cls(kind=match.group(1), count=int(match.group(2) or 0), after=int(match.group(3) or 0))


@dataclass(frozen=True, kw_only=True, slots=True)
class RestKnobs:
    """How the emulated REST server behaves. Times in seconds.

    api_keys: accepted keys; empty accepts any non-empty key.
    latency: delay before each answer starts.
    chunk_delay: delay between SSE chunks.
    words_per_chunk: words of text per SSE chunk.
    retry_delay: ``RetryInfo.retryDelay`` of 429 answers.
    retry_after_header: also send ``Retry-After`` (whole seconds) on 429/503.
    faults: injected faults, first applicable wins.
    record_limit: requests kept for inspection.
    verify: structured-output condition answers (responseSchema): judge (the offline signals of
      the pictures), agree (every condition met), reject (none met: a second opinion disagrees).
    """

    api_keys: tuple[str, ...] = ()
    latency: float = 0.0
    chunk_delay: float = 0.0
    words_per_chunk: int = 6
    retry_delay: float = 2.0
    retry_after_header: bool = False
    faults: tuple[RestFault, ...] = field(default_factory=tuple)
    record_limit: int = 10_000
    verify: str = "judge"

    def __post_init__(self) -> None:
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"REST emulator knob verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}")
        if self.latency < 0 or self.chunk_delay < 0 or self.retry_delay < 0:
            raise ValueError("latency, chunk_delay and retry_delay must be >= 0 seconds")
        if self.words_per_chunk < 1 or self.record_limit < 1:
            raise ValueError("words_per_chunk and record_limit must be >= 1")

    @classmethod
    def from_strings(cls, items: Iterable[str]) -> RestKnobs:
        """``key=value`` words: ``fault=429x3`` (repeatable), ``key=K`` (repeatable), ``latency=0.5``..."""
        values: dict[str, Any] = {}
        faults: list[RestFault] = []
        keys: list[str] = []
        known = {f.name: f for f in fields(cls)}
        for name, value in knob_words(items, "REST emulator knob"):
            if name == "fault":
                faults.append(RestFault.parse(value))
            elif name in ("key", "api_key"):
                keys.append(value)
            elif name == "retry_after_header":
                values[name] = value.lower() in ("1", "true", "yes", "on")
            elif name == "verify":
                values[name] = value
            elif name in known and name not in ("faults", "api_keys"):
                values[name] = int(value) if known[name].type == "int" else float(value)
            else:
                raise ValueError(f"unknown REST emulator knob {name!r}")
        return cls(api_keys=tuple(keys), faults=tuple(faults), **values)
