"""Watch conditions on the REST path: structured output (``responseSchema``) and its answer.

Every snapshot request of a session with conditions asks for JSON
(``generationConfig.responseMimeType: application/json`` with a
``responseSchema``): the commentary, and per condition one boolean ``met``,
a ``confidence`` and the ``evidence``. The second opinion (conditions/verify.py)
asks the same about one condition. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..events import ConditionVerdict
from .live import MAX_EVIDENCE
from .model import Condition

__all__ = ["StructuredAnswer", "parse_answer", "response_schema"]

_VERDICT = {
    "type": "OBJECT",
    "properties": {
        "met": {"type": "BOOLEAN"},
        "confidence": {"type": "NUMBER"},
        "evidence": {"type": "STRING"},
    },
    "required": ["met", "confidence", "evidence"],
}


def response_schema(conditions: Iterable[Condition], *, commentary: bool = True) -> dict[str, Any]:
    """The ``responseSchema`` (Gemini's OpenAPI subset): ``conditions`` keyed by condition id."""
    ids = [c.id for c in conditions]
    properties: dict[str, Any] = {
        "conditions": {"type": "OBJECT", "properties": {cid: dict(_VERDICT) for cid in ids}, "required": ids},
    }
    required = ["conditions"]
    if commentary:
        properties = {"commentary": {"type": "STRING"}, **properties}
        required = ["commentary", "conditions"]
    return {"type": "OBJECT", "properties": properties, "required": required}


@dataclass(frozen=True, slots=True)
class StructuredAnswer:
    commentary: str
    verdicts: tuple[ConditionVerdict, ...]


def parse_answer(text: str, conditions: Iterable[Condition], backend: str,
                 frame_ids: tuple[int, ...] = ()) -> StructuredAnswer:
    """The commentary and verdicts of a structured answer; ValueError (naming what is wrong)
    when it is not the JSON asked for. Conditions missing from the answer get no verdict."""
    try:
        obj = json.loads(text)
    except ValueError:
        raise ValueError(f"the answer is not JSON ({len(text)} characters)") from None
    if not isinstance(obj, Mapping) or not isinstance(obj.get("conditions"), Mapping):
        raise ValueError("the answer has no \"conditions\" object")
    found: Mapping[str, Any] = obj["conditions"]
    verdicts = []
    for condition in conditions:
        entry = found.get(condition.id)
        if isinstance(entry, Mapping):
            verdicts.append(_verdict(condition.id, entry, backend, frame_ids))
    return StructuredAnswer(str(obj.get("commentary") or "").strip(), tuple(verdicts))


def _verdict(cid: str, entry: Mapping[str, Any], backend: str, frame_ids: tuple[int, ...]) -> ConditionVerdict:
    try:
        confidence = min(max(float(entry.get("confidence", 0.0)), 0.0), 1.0)
    except (TypeError, ValueError):
        confidence = 0.0
    evidence = " ".join(str(entry.get("evidence") or "").split())[:MAX_EVIDENCE]
    return ConditionVerdict(cid, entry.get("met") is True, confidence, evidence, backend, frame_ids)
