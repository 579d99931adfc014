"""What each Live model family can do: the one table the rest of the code reads.

The model line-up changes every few months (LIVE_API.md, "Models"), so no other
module compares model names: they ask :func:`capabilities_for` and read fields.
Names match by longest prefix of the bare model id, so dated variants
(``...-preview-12-2025``) inherit their family. Unknown names get
:data:`SAFE_DEFAULTS`: what every current Live model accepts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..gemini_api import bare_model_id

# Turn coverage that makes frames sent while nobody speaks part of the turn
# (LIVE_API.md "Media": a camera stream needs TURN_INCLUDES_ALL_INPUT).
TURN_INCLUDES_ALL_INPUT = "TURN_INCLUDES_ALL_INPUT"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelCapabilities:
    """Capabilities of one Live model family.

    response_modality: what ``generationConfig.responseModalities`` must hold.
        Native-audio models answer AUDIO only (TEXT closes with 1007); their text
        comes through ``outputAudioTranscription``.
    client_content_mid_session: whether ``clientContent`` may follow realtime
        input (``gemini-3.1-flash-live-preview`` closes with 1007 otherwise).
    turn_coverage: the ``realtimeInputConfig.turnCoverage`` we send for video
        commentary, or None to leave the server default.
    thinking: "none" (send no ``thinkingConfig``), "budget" (``thinkingBudget``)
        or "level" (``thinkingLevel``).
    proactive_audio: "always" (built in; ``proactiveAudio: false`` is an error, so
        send no ``proactivity``), "optional" or "unsupported".
    accepts_null_handle: whether ``sessionResumption.handle: null`` is tolerated
        (we never send it, but the emulator rejects it where Google does).
    retired: the family was shut down; the server answers 1008.
    """

    family: str
    response_modality: str = "AUDIO"
    client_content_mid_session: bool = False
    turn_coverage: str | None = TURN_INCLUDES_ALL_INPUT
    thinking: str = "none"
    proactive_audio: str = "unsupported"
    accepts_null_handle: bool = False
    retired: bool = False

    @property
    def native_audio(self) -> bool:
        """True when the model speaks (AUDIO) and writes via transcription."""
        return self.response_modality == "AUDIO"


SAFE_DEFAULTS = ModelCapabilities(family="unknown")

# Longest matching prefix wins. Sources: LIVE_API.md "Models (late 2026)".
CAPABILITIES: tuple[ModelCapabilities, ...] = (
    # Stable since 2026-09: clientContent allowed, proactive audio always on,
    # no thinkingLevel.
    ModelCapabilities(
        family="gemini-3.8-live",
        client_content_mid_session=True,
        proactive_audio="always",
    ),
    # Rejects mid-session clientContent and handle: null.
    ModelCapabilities(family="gemini-3.1-flash-live", thinking="level"),
    ModelCapabilities(
        family="gemini-2.5-flash-native-audio",
        client_content_mid_session=True,
        thinking="budget",
        proactive_audio="optional",
        accepts_null_handle=True,
    ),
    # Vertex AI names for the same family.
    ModelCapabilities(
        family="gemini-live-2.5-flash-native-audio",
        client_content_mid_session=True,
        thinking="budget",
        proactive_audio="optional",
        accepts_null_handle=True,
    ),
    # Half-cascade text models, shut down 2025-12-09 (answer 1008 now).
    ModelCapabilities(
        family="gemini-2.0-flash-live",
        response_modality="TEXT",
        client_content_mid_session=True,
        accepts_null_handle=True,
        retired=True,
    ),
    ModelCapabilities(
        family="gemini-live-2.5-flash-preview",
        response_modality="TEXT",
        client_content_mid_session=True,
        accepts_null_handle=True,
        retired=True,
    ),
    ModelCapabilities(
        family="gemini-2.5-flash-live",
        response_modality="TEXT",
        client_content_mid_session=True,
        accepts_null_handle=True,
        retired=True,
    ),
)


def capabilities_for(name: str) -> ModelCapabilities:
    """Capabilities of the family ``name`` belongs to; :data:`SAFE_DEFAULTS` when unknown."""
    model_id = bare_model_id(name)
    best: ModelCapabilities | None = None
    for caps in CAPABILITIES:
        if model_id.startswith(caps.family) and (best is None or len(caps.family) > len(best.family)):
            best = caps
    return best if best is not None else SAFE_DEFAULTS
