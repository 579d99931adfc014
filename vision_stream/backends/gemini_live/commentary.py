"""What we ask of the model for video commentary: setup, tools and prompt wording.

The model does not comment on video by itself (LIVE_API.md "Media"): the
session sends ``realtimeInput.text`` prompts on a cadence, and declares
``report_event`` so structured findings arrive as function calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ...config import FunctionSpec, SessionSettings
from .builders import SetupParams
from .models import ModelCapabilities
from .protocol import REPORT_EVENT, SEVERITIES
from .settings import LiveSettings

DEFAULT_PERSONA = "a concise, observant live video commentator"

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

# Prompts the pipeline's own reasons turn into (its prompt() passes text="").
PROMPTS: Mapping[str, str] = {
    "cadence": "Briefly describe what is happening in the video right now and what changed since your last comment.",
    "scene": "The scene just changed. Describe the new scene in one or two sentences.",
    "final": "The stream has ended. Sum up in one or two sentences what the video showed.",
}


def prompt_text(text: str, reason: str) -> str:
    """The text to send: the client's own, or the wording for the pipeline's reason."""
    if text.strip():
        return text.strip()
    return PROMPTS.get(reason, PROMPTS["cadence"])


def system_instruction(session: SessionSettings) -> str:
    persona = session.persona.strip() or DEFAULT_PERSONA
    source = f" The stream is: {session.source_description}." if session.source_description else ""
    return (
        f"You are {persona}. You watch a live video stream, sent as still frames about once a second, "
        f"and hear its audio.{source} When asked, say in one or two short sentences what is happening now; "
        "mention only what you can see or hear. When something notable happens, call report_event. "
        f"Always answer in the language {session.language}."
    )


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
        system_instruction=system_instruction(session),
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
