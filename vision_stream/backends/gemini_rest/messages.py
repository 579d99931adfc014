"""``generateContent`` request bodies and responses (sans-I/O; LIVE_API.md §2, to the letter).

Request::

    {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/jpeg", "data": "<b64>"}},
                                             ..., {"text": "..."}]}],
     "systemInstruction": {"parts": [{"text": "..."}]},
     "generationConfig": {"maxOutputTokens": N, "mediaResolution": "MEDIA_RESOLUTION_..."}}

Response (also each SSE chunk): ``candidates[0].content.parts[].text``,
``candidates[0].finishReason``, ``promptFeedback.blockReason`` (then no
candidates), ``usageMetadata.candidatesTokenCount`` / ``promptTokenCount``.
Unknown keys are ignored (fields keep being added); parts with
``thought: true`` are not commentary.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...usage import Usage, usage_from_metadata

# finishReason values that mean "the answer was withheld", not "the answer ended".
BLOCKING_FINISH_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE",
     "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
)


@dataclass(frozen=True, slots=True)
class ImagePart:
    """One picture to send: JPEG bytes and the media time it shows (seconds, None if unknown)."""

    jpeg: bytes
    media_time: float | None = None
    mime_type: str = "image/jpeg"


def build_request(
    images: Sequence[ImagePart],
    text: str,
    *,
    system_instruction: str = "",
    max_output_tokens: int | None = None,
    media_resolution: str | None = None,
    temperature: float | None = None,
    response_schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``generateContent`` / ``streamGenerateContent`` (camelCase).

    ``response_schema``: structured output (watch conditions, conditions/rest.py):
    ``responseMimeType: application/json`` with that ``responseSchema``."""
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": image.mime_type, "data": base64.b64encode(image.jpeg).decode("ascii")}}
        for image in images
    ]
    if text:
        parts.append({"text": text})
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    if system_instruction:
        body["systemInstruction"] = {"parts": [{"text": system_instruction}]}
    generation: dict[str, Any] = {}
    if max_output_tokens is not None:
        generation["maxOutputTokens"] = max_output_tokens
    if media_resolution is not None:
        generation["mediaResolution"] = media_resolution
    if temperature is not None:
        generation["temperature"] = temperature
    if response_schema is not None:
        generation["responseMimeType"] = "application/json"
        generation["responseSchema"] = dict(response_schema)
    if generation:
        body["generationConfig"] = generation
    return body


@dataclass(frozen=True, slots=True)
class Chunk:
    """One ``GenerateContentResponse`` (a whole reply, or one SSE chunk of it).

    text: the text delta of this chunk (thought parts excluded).
    finish_reason: ``candidates[0].finishReason`` or "".
    block_reason: ``promptFeedback.blockReason`` or "".
    safety: categories rated ``blocked: true`` or with HIGH probability.
    prompt_tokens / response_tokens: ``usageMetadata`` (0 when absent).
    error: the ``error`` object when the chunk is one (inside an SSE stream).
    """

    text: str = ""
    finish_reason: str = ""
    block_reason: str = ""
    safety: tuple[str, ...] = ()
    prompt_tokens: int = 0
    response_tokens: int = 0
    model_version: str = ""
    error: Mapping[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)  # by kind (running totals within one response)

    @property
    def blocked(self) -> bool:
        return bool(self.block_reason) or self.finish_reason in BLOCKING_FINISH_REASONS


def _int(value: object) -> int:
    # int64 fields may arrive as strings (proto3 JSON).
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def parse_chunk(obj: object) -> Chunk:
    """Read one response object; tolerant of missing and unknown fields."""
    if not isinstance(obj, Mapping):
        return Chunk(error={"code": 200, "message": f"response is not a JSON object: {type(obj).__name__}"})
    error = obj.get("error")
    if isinstance(error, Mapping):
        return Chunk(error=error)
    texts: list[str] = []
    finish = ""
    safety: list[str] = []
    candidates = obj.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
        first = candidates[0]
        content = first.get("content")
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts or ():
            if isinstance(part, Mapping) and isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
        finish = str(first.get("finishReason") or "")
        for rating in first.get("safetyRatings") or ():
            if isinstance(rating, Mapping) and (rating.get("blocked") or rating.get("probability") == "HIGH"):
                safety.append(str(rating.get("category", "")))
    feedback = obj.get("promptFeedback")
    block = ""
    if isinstance(feedback, Mapping):
        block = str(feedback.get("blockReason") or "")
        for rating in feedback.get("safetyRatings") or ():
            if isinstance(rating, Mapping) and (rating.get("blocked") or rating.get("probability") == "HIGH"):
                safety.append(str(rating.get("category", "")))
    usage = obj.get("usageMetadata")
    usage = usage if isinstance(usage, Mapping) else {}
    return Chunk(
        text="".join(texts),
        finish_reason=finish,
        block_reason=block,
        safety=tuple(safety),
        prompt_tokens=_int(usage.get("promptTokenCount")),
        response_tokens=_int(usage.get("candidatesTokenCount")),
        model_version=str(obj.get("modelVersion") or ""),
        usage=usage_from_metadata(usage),
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole answer: the joined text and the last chunk's verdicts."""

    text: str
    finish_reason: str = ""
    block_reason: str = ""
    safety: tuple[str, ...] = ()
    prompt_tokens: int = 0
    response_tokens: int = 0
    model_version: str = ""
    usage: Usage = field(default_factory=Usage)

    @property
    def blocked(self) -> bool:
        return bool(self.block_reason) or self.finish_reason in BLOCKING_FINISH_REASONS

    def block_message(self) -> str:
        """What to tell the user when the answer was withheld."""
        why = f"promptFeedback.blockReason {self.block_reason}" if self.block_reason else (
            f"finishReason {self.finish_reason}")
        categories = f" ({', '.join(self.safety)})" if self.safety else ""
        return f"the model withheld its answer about these frames: {why}{categories}"


def join_chunks(chunks: Sequence[Chunk]) -> Reply:
    """Fold SSE chunks (text deltas; usage is cumulative, the last one wins) into a reply."""
    finish = block = version = ""
    safety: list[str] = []
    prompt_tokens = response_tokens = 0
    usage = Usage()
    for chunk in chunks:
        # Each SSE chunk repeats the response's running totals: the last non-empty one is its usage.
        usage = chunk.usage if chunk.usage.tokens else usage
        finish = chunk.finish_reason or finish
        block = chunk.block_reason or block
        version = chunk.model_version or version
        safety.extend(s for s in chunk.safety if s not in safety)
        prompt_tokens = chunk.prompt_tokens or prompt_tokens
        response_tokens = chunk.response_tokens or response_tokens
    return Reply(
        text="".join(c.text for c in chunks),
        finish_reason=finish,
        block_reason=block,
        safety=tuple(safety),
        prompt_tokens=prompt_tokens,
        response_tokens=response_tokens,
        model_version=version,
        usage=usage,
    )
