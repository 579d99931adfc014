"""The models the emulated Google server knows, with the quirks it enforces.

Kept apart from the client's capability table (``backends/gemini_live/models.py``)
on purpose: the emulator plays Google, so a wrong assumption in the client is
caught here instead of being shared. Facts: LIVE_API.md "Models (late 2026)".
Also the source for a future emulated ``GET /v1beta/models``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class EmulatedModel:
    """One Live model as the server treats it.

    native_audio: TEXT modality closes 1007 ("Cannot extract voices ...").
    client_content_mid_session: False -> clientContent after realtime input closes 1007.
    null_handle_ok: False -> ``sessionResumption.handle: null`` closes 1007.
    proactive_audio_always: True -> ``proactiveAudio: false`` closes 1007.
    thinking_level_ok: False -> ``thinkingConfig.thinkingLevel`` closes 1007.
    """

    model_id: str
    display_name: str
    native_audio: bool = True
    client_content_mid_session: bool = True
    null_handle_ok: bool = True
    proactive_audio_always: bool = False
    thinking_level_ok: bool = True
    input_token_limit: int = 131_072
    output_token_limit: int = 8_192


LIVE_MODELS: tuple[EmulatedModel, ...] = (
    EmulatedModel(
        model_id="gemini-3.8-live",
        display_name="Gemini 3.8 Live",
        null_handle_ok=False,
        proactive_audio_always=True,
        thinking_level_ok=False,
    ),
    EmulatedModel(
        model_id="gemini-3.1-flash-live-preview",
        display_name="Gemini 3.1 Flash Live Preview",
        client_content_mid_session=False,
        null_handle_ok=False,
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
