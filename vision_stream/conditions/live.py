"""Watch conditions on the Live path: the ``report_condition`` function and its calls.

The conditions themselves are words in the system instruction (and, when they
change at run time, a ``realtimeInput.text``: ``backends/prompts.py``); the
model reports a condition becoming true or false by calling
``report_condition(condition_id, met, confidence, evidence)``. Declared
NON_BLOCKING where the model takes it (the capability table), and answered
with ``scheduling: SILENT`` (gemini_live/protocol.py): the answer goes into
the model's context only, so a report never stalls nor interrupts the stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..events import ConditionVerdict
from .model import Condition

__all__ = ["REPORT_CONDITION", "report_condition_declaration", "verdict_from_call"]

REPORT_CONDITION = "report_condition"
MAX_EVIDENCE = 500  # characters of the model's evidence kept in an alert


def report_condition_declaration(conditions: Iterable[Condition]) -> dict[str, Any]:
    """The function declaration; ``condition_id`` is an enum of the ids declared at setup
    (a set changed at run time is named in words: ids outside the enum are still read)."""
    ids = [c.id for c in conditions]
    condition_id: dict[str, Any] = {"type": "STRING", "description": "The id of the condition, as in [id]."}
    if ids:
        condition_id["enum"] = ids
    return {
        "name": REPORT_CONDITION,
        "description": ("Report that one of the watch conditions became true (met=true) or stopped being "
                        "true (met=false)."),
        "parameters": {
            "type": "OBJECT",
            "properties": {
                "condition_id": condition_id,
                "met": {"type": "BOOLEAN", "description": "Whether the condition holds now."},
                "confidence": {"type": "NUMBER", "description": "Confidence from 0 to 1."},
                "evidence": {"type": "STRING", "description": "One sentence on what you see that shows it."},
            },
            "required": ["condition_id", "met", "confidence", "evidence"],
        },
    }


def verdict_from_call(args: Mapping[str, Any], backend: str, frame_ids: tuple[int, ...]) -> ConditionVerdict | None:
    """The verdict a ``report_condition`` call states; None when it names no condition.
    A malformed confidence counts as 0 (below any min_confidence: it changes nothing)."""
    condition_id = str(args.get("condition_id") or "").strip()
    if not condition_id:
        return None
    met = args.get("met")
    if isinstance(met, str):
        met = met.strip().lower() in ("true", "yes", "1")
    try:
        confidence = min(max(float(args.get("confidence", 0.0)), 0.0), 1.0)
    except (TypeError, ValueError):
        confidence = 0.0
    evidence = " ".join(str(args.get("evidence") or "").split())[:MAX_EVIDENCE]
    return ConditionVerdict(condition_id[:64], bool(met), confidence, evidence, backend, frame_ids)
