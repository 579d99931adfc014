"""What is Live's own in asking for video commentary: the setup and its tools.

The model does not comment on video by itself (LIVE_API.md "Media"): the
session sends ``realtimeInput.text`` prompts on a cadence (their wording and
the system instruction are shared with REST: ``backends/prompts.py``), and
declares ``report_event`` so structured findings arrive as function calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ...config import FunctionSpec, SessionSettings
from ..prompts import system_instruction
from .builders import SetupParams
from .models import ModelCapabilities
from .protocol import REPORT_EVENT, SEVERITIES
from .settings import LiveSettings

REPORT_EVENT_DECLARATION: Mapping[str, Any] = {
    "name": REPORT_EVENT,
    "description": (
        "Report one notable event seen or heard in the live stream: a scene cut, a person or "
        "vehicle appearing, an incident, a sudden change in light or sound."
    ),
    "parameters": {
        "type": "OBJECT",
        "properties": {
            "label": {"type": "STRING", "description": "Short snake_case label, e.g. scene_change."},
            "description": {"type": "STRING", "description": "One sentence on what happened."},
            "severity": {"type": "STRING", "enum": list(SEVERITIES), "description": "How much it matters."},
            "confidence": {"type": "NUMBER", "description": "Confidence from 0 to 1."},
        },
        "required": ["label", "description", "severity", "confidence"],
    },
}


def function_declarations(functions: tuple[FunctionSpec, ...]) -> list[Mapping[str, Any]]:
    """``report_event`` plus the client's own functions (JSON schema as ``parametersJsonSchema``)."""
    declared: list[Mapping[str, Any]] = [REPORT_EVENT_DECLARATION]
    for spec in functions:
        if spec.name == REPORT_EVENT:
            continue
        entry: dict[str, Any] = {"name": spec.name, "description": spec.description}
        if spec.parameters:
            entry["parametersJsonSchema"] = dict(spec.parameters)
        declared.append(entry)
    return declared


def thinking_config(caps: ModelCapabilities) -> Mapping[str, Any] | None:
    """Commentary wants low latency: no thinking where the model lets us say so."""
    if caps.thinking == "budget":
        return {"thinkingBudget": 0}
    if caps.thinking == "level":
        return {"thinkingLevel": "LOW"}
    return None  # "none": the model takes no thinking config (3.8 rejects thinkingLevel)


def setup_params(settings: LiveSettings, session: SessionSettings, caps: ModelCapabilities) -> SetupParams:
    """The setup for a video-commentary session on ``caps``' model family."""
    realtime: dict[str, Any] = {
        # Source audio (a film, a street) must not cut the commentary short.
        "activityHandling": "NO_INTERRUPTION",
    }
    if caps.turn_coverage is not None:
        realtime["turnCoverage"] = caps.turn_coverage
    return SetupParams(
        model=settings.model_resource if not session.model else _model_resource(settings, session.model),
        response_modality=caps.response_modality,
        media_resolution=settings.media_resolution,
        voice=settings.voice,
        temperature=settings.temperature,
        thinking_config=thinking_config(caps),
        system_instruction=system_instruction(session, "live"),
        function_declarations=function_declarations(session.functions),
        realtime_input_config=realtime,
        resumption=True,
        compression=settings.compression,
        input_transcription=True,
        # Native-audio models write their words only through this transcription.
        output_transcription=caps.native_audio,
        proactivity=None,
    )


def _model_resource(settings: LiveSettings, model: str) -> str:
    return replace(settings, model=model).model_resource
