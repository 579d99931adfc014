"""What is Live's own in asking for video commentary: the setup and its tools.

The model does not comment on video by itself (LIVE_API.md "Media"): the
session sends ``realtimeInput.text`` prompts on a cadence (their wording and
the system instruction are shared with REST: ``backends/prompts.py``), and
declares ``report_event`` so structured findings arrive as function calls.
Where the model takes NON_BLOCKING calls (the capability table: 3.8 and 2.5
native audio on the Gemini API; never 3.1 nor Vertex AI) every declaration
says so, so a ``report_event`` call never stalls the stream while the model
waits for our answer (LIVE_API.md "Server messages").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ...conditions.live import REPORT_CONDITION, report_condition_declaration
from ...conditions.model import Condition
from ...config import FunctionSpec, SessionSettings
from ..prompts import system_instruction
from .builders import SetupParams
from .models import ModelCapabilities, check_session_options
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


NON_BLOCKING = "NON_BLOCKING"


def function_declarations(
    functions: tuple[FunctionSpec, ...], *, non_blocking: bool = False, conditions: tuple[Condition, ...] = ()
) -> list[Mapping[str, Any]]:
    """``report_event`` (and ``report_condition`` when the session watches conditions) plus the
    client's own functions (JSON schema as ``parametersJsonSchema``), each with
    ``behavior: NON_BLOCKING`` when ``non_blocking``."""
    declared: list[Mapping[str, Any]] = [dict(REPORT_EVENT_DECLARATION)]
    if conditions:
        declared.append(report_condition_declaration(conditions))
    for spec in functions:
        if spec.name in (REPORT_EVENT, REPORT_CONDITION):
            continue
        entry: dict[str, Any] = {"name": spec.name, "description": spec.description}
        if spec.parameters:
            entry["parametersJsonSchema"] = dict(spec.parameters)
        declared.append(entry)
    if non_blocking:
        declared = [{**entry, "behavior": NON_BLOCKING} for entry in declared]
    return declared


def thinking_config(caps: ModelCapabilities) -> Mapping[str, Any] | None:
    """Commentary wants low latency: no thinking where the model lets us say so.

    A model that refuses to start without ``thinkingConfig`` (3.8 extended
    thinking) gets one that keeps its own budget and asks for no thought
    parts: thoughts are never commentary, so they need not cross the wire.
    """
    if caps.requires_thinking_config:
        return {"includeThoughts": False}
    if caps.thinking == "budget":
        return {"thinkingBudget": 0}
    if caps.thinking == "level":
        return {"thinkingLevel": "LOW"}
    return None  # "none": the model takes no thinking config (3.8 rejects thinkingLevel)


def setup_params(settings: LiveSettings, session: SessionSettings, caps: ModelCapabilities) -> SetupParams:
    """The setup for a video-commentary session on ``caps``' model family.

    The session's own voice, language, media resolution and tools win over the
    backend's settings; a voice, language or tool the model lacks raises
    :class:`~vision_stream.errors.InvalidInputError` naming the model and the value.
    """
    model = session.model or settings.model
    options = check_session_options(model, caps, voice=session.voice or settings.voice, language=session.language,
                                    tools=session.tools, functions=len(session.functions))
    # Vertex AI does not support NON_BLOCKING calls (LIVE_API.md "Server messages").
    non_blocking = caps.non_blocking_tools and settings.vertex is None
    declarations = function_declarations(session.functions, non_blocking=non_blocking,
                                         conditions=session.conditions) if caps.function_calling else []
    realtime: dict[str, Any] = {
        # Source audio (a film, a street) must not cut the commentary short.
        "activityHandling": "NO_INTERRUPTION",
    }
    if caps.turn_coverage is not None:
        realtime["turnCoverage"] = caps.turn_coverage
    return SetupParams(
        model=settings.model_resource if not session.model else _model_resource(settings, session.model),
        response_modality=caps.response_modality,
        media_resolution=session.media_resolution or settings.media_resolution,
        voice=options.voice,
        language_code=options.language,
        temperature=settings.temperature,
        thinking_config=thinking_config(caps),
        # The language is a prompt line too, spelled as the table spells it.
        system_instruction=system_instruction(replace(session, language=options.language or session.language), "live"),
        function_declarations=declarations,
        extra_tools=options.tools,
        realtime_input_config=realtime,
        resumption=True,
        compression=settings.compression,
        compression_trigger_tokens=settings.compression_trigger_tokens,
        input_transcription=True,
        # Native-audio models write their words only through this transcription.
        output_transcription=caps.native_audio,
        proactivity=None,
    )


def resumed_context(summary: str) -> str:
    """The ``realtimeInput.text`` a fresh session gets when a restarted camera could not resume:
    what the session said before (the rolling summary, at most ~2 KB: store/continuity.py)."""
    return ("This camera's commentary session restarted and its earlier context is lost. Before the "
            f"restart you said:\n{summary.strip()}\nKeep this in mind and go on commenting on the "
            "stream; reply only \"OK\" now.")


def _model_resource(settings: LiveSettings, model: str) -> str:
    return replace(settings, model=model).model_resource
