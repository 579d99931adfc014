"""The models the emulated Google server knows, with the quirks it enforces.

Kept apart from the client's capability table (``backends/gemini_live/models.py``)
on purpose: the emulator plays Google, so a wrong assumption in the client is
caught here instead of being shared. Facts: LIVE_API.md "Models (late 2026)".
Also the source for a future emulated ``GET /v1beta/models``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The prebuilt voices Google's native-audio models speak (its speech-generation
# voice list). The emulator's own copy, like every fact here.
VOICES = (
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe", "Autonoe",
    "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib", "Rasalgethi",
    "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima", "Achird", "Zubenelgenubi",
    "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class EmulatedModel:
    """One Live model as the server treats it.

    native_audio: TEXT modality closes 1007 ("Cannot extract voices ...").
    client_content_mid_session: False -> clientContent after realtime input closes 1007.
    null_handle_ok: False -> ``sessionResumption.handle: null`` closes 1007.
    proactive_audio_always: True -> ``proactiveAudio: false`` closes 1007.
    thinking_level_ok: False -> ``thinkingConfig.thinkingLevel`` closes 1007.
    requires_thinking_config: True -> a setup without ``thinkingConfig`` closes 1007
        (``gemini-3.8-live-extended-thinking`` refuses to start without one).
    non_blocking_ok: False -> a ``behavior: NON_BLOCKING`` declaration, or a
        ``scheduling`` in a tool response, closes 1007 (3.1: BLOCKING only; the
        emulator's choice of close for an unsupported field).
    non_blocking_default: declarations without ``behavior`` are NON_BLOCKING (3.8).
    interaction_status: answers carry ``interactionStatus``: an answer of two
        chunks or more is sent as two, each closed by a ``turnComplete``, the
        first ``IN_PROGRESS`` (the model keeps working), the last ``IDLE`` (3.8).
    code_execution_ok: False -> a ``codeExecution`` tool closes 1007 (no current
        Live model supports it; Google Search grounding is supported).
    voices: ``speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName`` accepted;
        another closes 1007. Empty: any.
    """

    model_id: str
    display_name: str
    native_audio: bool = True
    client_content_mid_session: bool = True
    null_handle_ok: bool = True
    proactive_audio_always: bool = False
    thinking_level_ok: bool = True
    requires_thinking_config: bool = False
    non_blocking_ok: bool = True
    non_blocking_default: bool = False
    interaction_status: bool = False
    code_execution_ok: bool = False
    voices: tuple[str, ...] = VOICES
    input_token_limit: int = 131_072
    output_token_limit: int = 8_192


LIVE_MODELS: tuple[EmulatedModel, ...] = (
    EmulatedModel(
        model_id="gemini-3.8-live",
        display_name="Gemini 3.8 Live",
        null_handle_ok=False,
        proactive_audio_always=True,
        thinking_level_ok=False,
        non_blocking_default=True,
        interaction_status=True,
    ),
    EmulatedModel(
        model_id="gemini-3.8-live-extended-thinking",
        display_name="Gemini 3.8 Live Extended Thinking",
        null_handle_ok=False,
        proactive_audio_always=True,
        thinking_level_ok=False,
        requires_thinking_config=True,
        non_blocking_default=True,
        interaction_status=True,
    ),
    EmulatedModel(
        model_id="gemini-3.1-flash-live-preview",
        display_name="Gemini 3.1 Flash Live Preview",
        client_content_mid_session=False,
        null_handle_ok=False,
        non_blocking_ok=False,
    ),
    EmulatedModel(
        model_id="gemini-3.5-live-translate-preview",
        display_name="Gemini 3.5 Live Translate Preview",
        client_content_mid_session=False,
        null_handle_ok=False,
        non_blocking_ok=False,
    ),
    EmulatedModel(
        model_id="gemini-2.5-flash-native-audio-preview-12-2025",
        display_name="Gemini 2.5 Flash Native Audio Preview 12-2025",
        input_token_limit=128_000,
    ),
    EmulatedModel(
        model_id="gemini-2.5-flash-native-audio-latest",
        display_name="Gemini 2.5 Flash Native Audio Latest",
        input_token_limit=128_000,
    ),
)

BY_ID = {m.model_id: m for m in LIVE_MODELS}


def model_id(name: str) -> str:
    """The id in ``<id>``, ``models/<id>`` or a Vertex resource name, as Google reads it.

    The emulators' own copy of the rule (``backends.gemini_api.bare_model_id`` is
    the client's): ``testing/`` does not import the code it tests, so a wrong
    client rule is caught rather than agreed with.
    """
    return name.rsplit("/", 1)[-1]


def find_model(name: str) -> EmulatedModel | None:
    """The model for ``models/<id>`` or a Vertex resource name, None if not served."""
    return BY_ID.get(model_id(name))


def setup_refusal(model: EmulatedModel, setup: Mapping[str, Any]) -> str | None:
    """Why ``model`` refuses this (schema-valid, camelCase) ``setup``, or None.

    The per-model checks of :class:`EmulatedModel`; the emulator closes 1007
    "Request contains an invalid argument." with this as its log detail.
    """
    generation = setup.get("generationConfig") or {}
    if model.requires_thinking_config and generation.get("thinkingConfig") is None:
        return f"{model.model_id} needs thinkingConfig"
    voice = (((generation.get("speechConfig") or {}).get("voiceConfig") or {}).get("prebuiltVoiceConfig") or {})
    name = voice.get("voiceName")
    if name and model.voices and name not in model.voices:
        return f"unknown voice {name!r}"
    for tool in setup.get("tools") or ():
        if "codeExecution" in tool and not model.code_execution_ok:
            return f"codeExecution is not supported by {model.model_id}"
        for declaration in tool.get("functionDeclarations") or ():
            if declaration.get("behavior") == "NON_BLOCKING" and not model.non_blocking_ok:
                return f"NON_BLOCKING functions are not supported by {model.model_id}"
    return None

