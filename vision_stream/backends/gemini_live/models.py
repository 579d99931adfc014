"""What each Live model family can do: the one table the rest of the code reads.

The model line-up changes every few months (LIVE_API.md, "Models"), so no other
module compares model names: they ask :func:`capabilities_for` and read fields.
Names match by longest prefix of the bare model id, so dated variants
(``...-preview-12-2025``) inherit their family. Unknown names get
:data:`SAFE_DEFAULTS`: what every current Live model accepts.

Per-session choices (voice, language, built-in tools) are checked against this
table by :func:`check_session_options` before a session opens, so a choice the
model would refuse (Google closes with 1007) is an ``INVALID_ARGUMENT`` naming
the model and the value instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...config import SessionSettings
from ...errors import InvalidInputError, quote
from ..gemini_api import bare_model_id

# Turn coverage that makes frames sent while nobody speaks part of the turn
# (LIVE_API.md "Media": a camera stream needs TURN_INCLUDES_ALL_INPUT).
TURN_INCLUDES_ALL_INPUT = "TURN_INCLUDES_ALL_INPUT"
TURN_INCLUDES_ONLY_ACTIVITY = "TURN_INCLUDES_ONLY_ACTIVITY"
TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO = "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"

# Built-in tools by the name users give (SessionConfig.tools, ``--tool``) -> the
# ``setup.tools`` entry (LIVE_API.md "Client messages").
BUILTIN_TOOLS: dict[str, dict[str, dict[str, object]]] = {
    "google_search": {"googleSearch": {}},
    "code_execution": {"codeExecution": {}},
}

# The prebuilt voices of the native-audio models (Google's speech-generation
# voice list, shared by the native-audio Live models).
NATIVE_AUDIO_VOICES: tuple[str, ...] = (
    "Zephyr", "Puck", "Charon", "Kore", "Fenrir", "Leda", "Orus", "Aoede", "Callirrhoe", "Autonoe",
    "Enceladus", "Iapetus", "Umbriel", "Algieba", "Despina", "Erinome", "Algenib", "Rasalgethi",
    "Laomedeia", "Achernar", "Alnilam", "Schedar", "Gacrux", "Pulcherrima", "Achird", "Zubenelgenubi",
    "Vindemiatrix", "Sadachbia", "Sadaltager", "Sulafat",
)
# ``speechConfig.languageCode`` values of the Live API's language table. Google's
# lists disagree (24 on Vertex's page, about 70 in examples; LIVE_API.md
# "Models"): this is the Live API page's table, kept here and nowhere else.
LIVE_LANGUAGES: tuple[str, ...] = (
    "ar-XA", "bn-IN", "cmn-CN", "de-DE", "en-AU", "en-GB", "en-IN", "en-US", "es-ES", "es-US", "fr-CA",
    "fr-FR", "gu-IN", "hi-IN", "id-ID", "it-IT", "ja-JP", "kn-IN", "ko-KR", "ml-IN", "mr-IN", "nl-NL",
    "pl-PL", "pt-BR", "ru-RU", "ta-IN", "te-IN", "th-TH", "tr-TR", "vi-VN",
)


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
    server_turn_coverage: the server's default turn coverage (what applies when
        we send none): 3.8 includes all video by default, so every frame sent
        costs tokens whether or not anyone speaks.
    thinking: "none" (send no ``thinkingConfig``), "budget" (``thinkingBudget``)
        or "level" (``thinkingLevel``).
    requires_thinking_config: the model refuses to start without a
        ``thinkingConfig`` (``gemini-3.8-live-extended-thinking``).
    proactive_audio: "always" (built in; ``proactiveAudio: false`` is an error, so
        send no ``proactivity``), "optional" or "unsupported".
    non_blocking_tools: function declarations may say ``behavior: NON_BLOCKING``
        (3.8: the server's default), so a call such as ``report_event`` never
        stalls the stream, and responses may carry ``scheduling``. False: BLOCKING
        only (3.1; Vertex AI never supports NON_BLOCKING).
    function_calling: the model takes function declarations at all (the
        translation model does not).
    builtin_tools: the built-in tools (:data:`BUILTIN_TOOLS` names) it supports:
        Google Search grounding on current models; code execution on none.
    translation_only: an audio-to-audio translation model, not a commentator.
    voices / languages: accepted ``speechConfig`` values; empty: not checked.
    accepts_null_handle: whether ``sessionResumption.handle: null`` is tolerated
        (we never send it, but the emulator rejects it where Google does).
    retired: the family was shut down; the server answers 1008.
    """

    family: str
    response_modality: str = "AUDIO"
    client_content_mid_session: bool = False
    turn_coverage: str | None = TURN_INCLUDES_ALL_INPUT
    server_turn_coverage: str = TURN_INCLUDES_ONLY_ACTIVITY
    thinking: str = "none"
    requires_thinking_config: bool = False
    proactive_audio: str = "unsupported"
    non_blocking_tools: bool = False
    function_calling: bool = True
    builtin_tools: frozenset[str] = frozenset({"google_search"})
    translation_only: bool = False
    voices: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    accepts_null_handle: bool = False
    retired: bool = False

    @property
    def native_audio(self) -> bool:
        """True when the model speaks (AUDIO) and writes via transcription."""
        return self.response_modality == "AUDIO"

    def language_code(self, language: str) -> str | None:
        """``language`` as the table spells it (case-insensitive); None when the model lacks it.

        An empty table accepts any language as given.
        """
        if not self.languages:
            return language
        wanted = language.strip().lower()
        return next((code for code in self.languages if code.lower() == wanted), None)

    def voice_name(self, voice: str) -> str | None:
        """``voice`` as the table spells it (case-insensitive); None when the model lacks it."""
        if not self.voices:
            return voice
        wanted = voice.strip().lower()
        return next((name for name in self.voices if name.lower() == wanted), None)


SAFE_DEFAULTS = ModelCapabilities(family="unknown")

# Longest matching prefix wins. Sources: LIVE_API.md "Models (late 2026)".
CAPABILITIES: tuple[ModelCapabilities, ...] = (
    # Stable since 2026-09-15: clientContent allowed, proactive audio always on,
    # no thinkingLevel, NON_BLOCKING function calling by default, turn coverage
    # that includes all video by default.
    ModelCapabilities(
        family="gemini-3.8-live",
        client_content_mid_session=True,
        server_turn_coverage=TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO,
        proactive_audio="always",
        non_blocking_tools=True,
        voices=NATIVE_AUDIO_VOICES,
        languages=LIVE_LANGUAGES,
    ),
    # The same, thinking longer: refuses to start without thinkingConfig.
    ModelCapabilities(
        family="gemini-3.8-live-extended-thinking",
        client_content_mid_session=True,
        server_turn_coverage=TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO,
        requires_thinking_config=True,
        proactive_audio="always",
        non_blocking_tools=True,
        voices=NATIVE_AUDIO_VOICES,
        languages=LIVE_LANGUAGES,
    ),
    # Legacy preview: rejects mid-session clientContent and handle: null; BLOCKING tools only.
    ModelCapabilities(
        family="gemini-3.1-flash-live",
        thinking="level",
        voices=NATIVE_AUDIO_VOICES,
        languages=LIVE_LANGUAGES,
    ),
    # Audio-only speech translation: no commentary tools.
    ModelCapabilities(
        family="gemini-3.5-live-translate",
        function_calling=False,
        builtin_tools=frozenset(),
        translation_only=True,
        voices=NATIVE_AUDIO_VOICES,
        languages=LIVE_LANGUAGES,
    ),
    ModelCapabilities(
        family="gemini-2.5-flash-native-audio",
        client_content_mid_session=True,
        thinking="budget",
        proactive_audio="optional",
        non_blocking_tools=True,
        voices=NATIVE_AUDIO_VOICES,
        languages=LIVE_LANGUAGES,
        accepts_null_handle=True,
    ),
    # Vertex AI names for the same family (Vertex never supports NON_BLOCKING).
    ModelCapabilities(
        family="gemini-live-2.5-flash-native-audio",
        client_content_mid_session=True,
        thinking="budget",
        proactive_audio="optional",
        voices=NATIVE_AUDIO_VOICES,
        languages=LIVE_LANGUAGES,
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


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """A session's speech and tool choices, checked and spelled as the model wants them."""

    voice: str = ""
    language: str = ""
    tools: tuple[dict[str, dict[str, object]], ...] = ()


def check_session_options(
    model: str, caps: ModelCapabilities, *, voice: str, language: str, tools: Sequence[str], functions: int = 0
) -> SessionOptions:
    """The session's voice, language and built-in tools as ``setup`` carries them.

    Raises :class:`~vision_stream.errors.InvalidInputError` (gRPC
    INVALID_ARGUMENT) naming the model and the value when the model does not
    support one: Google would close the connection with 1007 instead.
    """
    name = quote(bare_model_id(model))
    spelled_voice = caps.voice_name(voice) if voice else ""
    if spelled_voice is None:
        raise InvalidInputError(f"model {name} has no voice {quote(voice)}; voices: {', '.join(caps.voices)}")
    code = caps.language_code(language) if language else ""
    if code is None:
        raise InvalidInputError(
            f"model {name} does not speak language {quote(language)}; languages: {', '.join(caps.languages)}")
    entries = []
    for tool in dict.fromkeys(tools):
        if tool not in BUILTIN_TOOLS:
            raise InvalidInputError(f"unknown tool {quote(tool)}; tools: {', '.join(BUILTIN_TOOLS)}")
        if tool not in caps.builtin_tools:
            raise InvalidInputError(f"model {name} does not support the tool {quote(tool)}")
        entries.append(BUILTIN_TOOLS[tool])
    if functions and not caps.function_calling:
        raise InvalidInputError(f"model {name} takes no function declarations")
    return SessionOptions(voice=spelled_voice, language=code, tools=tuple(entries))


def check_session(model: str, session: SessionSettings) -> SessionOptions:
    """:func:`check_session_options` for ``session`` on ``model`` (its own model wins)."""
    chosen = session.model or model
    return check_session_options(chosen, capabilities_for(chosen), voice=session.voice, language=session.language,
                                 tools=session.tools, functions=len(session.functions))
