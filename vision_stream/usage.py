"""Tokens billed, by kind, read from Gemini's ``usageMetadata`` (pure, no I/O).

How Google bills (LIVE_API.md "Cost"): Live bills by token and the whole
accumulated context is billed again on every turn; users reconciling bills
found that only "sum every turn's usageMetadata" matches. The recorded real
sessions (../shared/vectors/live) carry exactly one ``usageMetadata`` per turn,
on the ``turnComplete`` message, holding that turn's counts (the context
re-billed included): so a Live session SUMS every ``usageMetadata`` it receives.
A REST streamed answer repeats running totals in every SSE chunk of one
response (the recorded streams repeat the same ``promptTokenCount`` in each
chunk): there the LAST chunk's usage is the response's, and responses are
summed.

Kinds (the keys of ``Stats.usage``): ``input_text``, ``input_audio``,
``input_video``, ``input_image``, ``output_text``, ``output_audio``,
``thoughts``, ``tool_use``. 3.8 may leave 25-51 prompt tokens per turn out of
``promptTokensDetails``: the remainder of ``promptTokenCount`` not covered by
the details is counted as ``input_text`` (it is the system instruction and
declarations, text; and it keeps the kinds' sum equal to what Google bills).
Likewise a response remainder goes to ``output_text``.

It also holds the ONE token estimator (what a frame, a second of audio, a text
will cost before Google says so): the emulators' token model
(testing/live_usage.py) and the budget governor's forecast (pipeline/budget.py)
both use it, so what the governor predicts is what the emulator bills. The
published figures (LIVE_API.md "Cost"): 64 tokens a frame at
``MEDIA_RESOLUTION_LOW``, else 258 per started 768x768 tile; audio 32 tokens a
second; text about one token per 4 characters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AUDIO_TOKENS_PER_SECOND", "KINDS", "Usage", "audio_tokens", "image_tokens", "jpeg_tokens",
           "text_tokens", "usage_from_metadata"]

TILE_PX = 768
TOKENS_PER_TILE = 258
LOW_TOKENS_PER_FRAME = 64
AUDIO_TOKENS_PER_SECOND = 32

KINDS = ("input_text", "input_audio", "input_video", "input_image",
         "output_text", "output_audio", "thoughts", "tool_use")

# ``ModalityTokenCount.modality`` -> the kind suffix (DOCUMENT is billed as text).
_MODALITY = {"TEXT": "text", "AUDIO": "audio", "VIDEO": "video", "IMAGE": "image", "DOCUMENT": "text"}


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts by kind (only non-zero kinds kept); ``a + b`` sums two turns."""

    tokens: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Usage) -> Usage:
        merged = dict(self.tokens)
        for kind, count in other.tokens.items():
            merged[kind] = merged.get(kind, 0) + count
        return Usage(merged)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(sorted(self.tokens.items()))

    def get(self, kind: str) -> int:
        return self.tokens.get(kind, 0)

    @property
    def total(self) -> int:
        return sum(self.tokens.values())

    @property
    def prompt(self) -> int:
        """Input-side tokens (what ``promptTokenCount`` + ``toolUsePromptTokenCount`` bill)."""
        return sum(v for k, v in self.tokens.items() if k.startswith("input_") or k == "tool_use")

    @property
    def response(self) -> int:
        """Output-side tokens (``responseTokenCount`` + ``thoughtsTokenCount``)."""
        return sum(v for k, v in self.tokens.items() if k.startswith("output_") or k == "thoughts")


def _count(value: Any) -> int:
    """A proto3 JSON int32/int64 (int64 arrives as a decimal string); junk counts 0."""
    if isinstance(value, bool):
        return 0
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _by_modality(details: Any, side: str, total: int, into: dict[str, int]) -> None:
    """Add ``[{modality, tokenCount}]`` as ``{side}_{modality}``; the part of ``total``
    the details do not cover goes to ``{side}_text`` (see the module docstring)."""
    covered = 0
    for item in details if isinstance(details, list) else ():
        if not isinstance(item, Mapping):
            continue
        tokens = _count(item.get("tokenCount"))
        kind = f"{side}_{_MODALITY.get(str(item.get('modality', '')), 'text')}"
        into[kind] = into.get(kind, 0) + tokens
        covered += tokens
    if total > covered:
        into[f"{side}_text"] = into.get(f"{side}_text", 0) + total - covered


def usage_from_metadata(meta: Mapping[str, Any]) -> Usage:
    """One ``usageMetadata`` object (Live or REST/Vertex) as a :class:`Usage`.

    Live names the answer ``responseTokenCount``/``responseTokensDetails``;
    REST and Vertex ``candidatesTokenCount``/``candidatesTokensDetails``.
    ``toolUsePromptTokenCount`` and ``thoughtsTokenCount`` are billed on top of
    the prompt and response counts (Google's ``totalTokenCount`` adds them).
    """
    tokens: dict[str, int] = {}
    prompt = _count(meta.get("promptTokenCount"))
    _by_modality(meta.get("promptTokensDetails"), "input", prompt, tokens)
    response_key = "responseTokenCount" if "responseTokenCount" in meta else "candidatesTokenCount"
    details_key = "responseTokensDetails" if "responseTokensDetails" in meta else "candidatesTokensDetails"
    _by_modality(meta.get(details_key), "output", _count(meta.get(response_key)), tokens)
    for key, kind in (("toolUsePromptTokenCount", "tool_use"), ("thoughtsTokenCount", "thoughts")):
        if count := _count(meta.get(key)):
            tokens[kind] = count
    return Usage({k: v for k, v in tokens.items() if v})


# ---- the token estimator (see the module docstring) ----------------------------------------


def text_tokens(text: str) -> int:
    """About one token per 4 characters (at least 1 for any text)."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


def image_tokens(width: int, height: int, resolution: str) -> int:
    """Tokens of one frame: 64 at LOW, else 258 per started 768x768 tile."""
    if resolution.upper().endswith("LOW"):
        return LOW_TOKENS_PER_FRAME
    return TOKENS_PER_TILE * max(1, math.ceil(width / TILE_PX)) * max(1, math.ceil(height / TILE_PX))


def jpeg_tokens(data: bytes, resolution: str) -> int:
    """Tokens of an encoded JPEG/PNG, sized from its header (unreadable: one tile)."""
    width, height = image_size(data) or (TILE_PX, TILE_PX)
    return image_tokens(width, height, resolution)


# JPEG start-of-frame markers (baseline, progressive, ...); C4/C8/CC are DHT/JPG/DAC, not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment or a PNG's IHDR, without decoding.

    The header alone, as Pillow's ``Image.open`` read it, without Pillow: it is
    not a dependency of the package (a fresh install had the emulator fail every
    frame with ModuleNotFoundError), and decoding with OpenCV would cost ~1 ms.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # fill byte, TEM, RSTn, SOI: no length
            i += 1 if marker == 0xFF else 2
            continue
        if marker in _JPEG_SOF:  # FFCn, length, precision, height, width
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def audio_tokens(seconds: float) -> int:
    """Tokens of ``seconds`` of audio input (32 a second, rounded up)."""
    return math.ceil(max(0.0, seconds) * AUDIO_TOKENS_PER_SECOND)
