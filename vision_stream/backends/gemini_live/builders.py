"""Client -> server messages of ``BidiGenerateContent``, built as plain dicts.

Wire rules (LIVE_API.md "Client messages"): exactly one top-level key per
message; lowerCamelCase; binary payloads as standard base64 strings; one field
per ``realtimeInput``; never the deprecated ``mediaChunks`` (newer models close
with 1007); ``sessionResumption`` is ``{}`` or ``{"handle": ...}``, never
``handle: null``; ``contextWindowCompression`` always carries ``slidingWindow``.

Pure functions, no I/O. :func:`encode` gives the compact text for one
WebSocket text frame.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]

AUDIO_IN_MIME = "audio/pcm;rate={rate}"
JPEG_MIME = "image/jpeg"


def b64(data: bytes) -> str:
    """Standard base64 (with padding), as proto3 JSON ``bytes`` fields expect."""
    return base64.b64encode(data).decode("ascii")


def encode(message: Message) -> str:
    """Compact JSON for one text frame (the SDKs send compact JSON too)."""
    if len(message) != 1:
        raise ValueError(f"a client message has exactly one top-level key, got {sorted(message)}")
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class SetupParams:
    """Everything that goes into ``setup``; ``None``/empty fields are left out.

    model: ``models/<id>`` (Gemini API) or a full Vertex resource name.
    response_modality: "AUDIO" for native-audio models ("TEXT" only for retired ones).
    media_resolution: e.g. "MEDIA_RESOLUTION_LOW" (64 tokens a frame).
    voice: prebuilt voice name, "" for the server default.
    language_code: ``speechConfig.languageCode`` (BCP-47), "" for the server default.
    thinking_config: already shaped for the model (``{"thinkingBudget": 0}``...), or None.
    function_declarations: ``functionDeclarations`` entries (camelCase dicts, with
        ``behavior`` where the model takes NON_BLOCKING calls).
    extra_tools: built-in tools after the declarations, e.g. ``{"googleSearch": {}}``.
    realtime_input_config: ``realtimeInputConfig`` dict, or None.
    resumption_handle: newest resumable handle; None means "resumption on, no handle".
    resumption: send ``sessionResumption`` at all.
    compression: send ``contextWindowCompression: {slidingWindow: {}}``.
    compression_trigger_tokens: optional ``triggerTokens``.
    proactivity: ``proactivity`` dict, or None.
    """

    model: str
    response_modality: str = "AUDIO"
    media_resolution: str | None = None
    voice: str = ""
    language_code: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None
    thinking_config: Mapping[str, Any] | None = None
    system_instruction: str = ""
    function_declarations: Sequence[Mapping[str, Any]] = ()
    realtime_input_config: Mapping[str, Any] | None = None
    resumption: bool = True
    resumption_handle: str | None = None
    compression: bool = True
    compression_trigger_tokens: int | None = None
    input_transcription: bool = True
    output_transcription: bool = True
    proactivity: Mapping[str, Any] | None = None
    extra_tools: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


def setup(params: SetupParams) -> Message:
    """The ``setup`` message (first message of every connection)."""
    generation: dict[str, Any] = {"responseModalities": [params.response_modality]}
    if params.media_resolution:
        generation["mediaResolution"] = params.media_resolution
    speech: dict[str, Any] = {}
    if params.voice:
        speech["voiceConfig"] = {"prebuiltVoiceConfig": {"voiceName": params.voice}}
    if params.language_code:
        speech["languageCode"] = params.language_code
    if speech:
        generation["speechConfig"] = speech
    if params.temperature is not None:
        generation["temperature"] = params.temperature
    if params.max_output_tokens is not None:
        generation["maxOutputTokens"] = params.max_output_tokens
    if params.thinking_config is not None:
        generation["thinkingConfig"] = dict(params.thinking_config)
    body: dict[str, Any] = {"model": params.model, "generationConfig": generation}
    if params.system_instruction:
        body["systemInstruction"] = {"parts": [{"text": params.system_instruction}]}
    tools: list[dict[str, Any]] = []
    if params.function_declarations:
        tools.append({"functionDeclarations": [dict(d) for d in params.function_declarations]})
    tools.extend(dict(t) for t in params.extra_tools)
    if tools:
        body["tools"] = tools
    if params.realtime_input_config is not None:
        body["realtimeInputConfig"] = dict(params.realtime_input_config)
    if params.resumption:
        # Omit "handle" when there is none: newer models reject handle: null.
        body["sessionResumption"] = {} if params.resumption_handle is None else {"handle": params.resumption_handle}
    if params.compression:
        window: dict[str, Any] = {"slidingWindow": {}}
        if params.compression_trigger_tokens is not None:
            window["triggerTokens"] = str(params.compression_trigger_tokens)  # int64 -> string
        body["contextWindowCompression"] = window
    if params.input_transcription:
        body["inputAudioTranscription"] = {}
    if params.output_transcription:
        body["outputAudioTranscription"] = {}
    if params.proactivity is not None:
        body["proactivity"] = dict(params.proactivity)
    return {"setup": body}


def realtime_video(jpeg: bytes, *, mime_type: str = JPEG_MIME) -> Message:
    """One still frame as ``realtimeInput.video`` (never ``mediaChunks``)."""
    return {"realtimeInput": {"video": {"mimeType": mime_type, "data": b64(jpeg)}}}


def realtime_audio(pcm: bytes, *, rate: int = 16000) -> Message:
    """PCM16 LE mono audio as ``realtimeInput.audio`` with its rate in the MIME type."""
    return {"realtimeInput": {"audio": {"mimeType": AUDIO_IN_MIME.format(rate=rate), "data": b64(pcm)}}}


def realtime_text(text: str) -> Message:
    """A prompt during a stream: ``realtimeInput.text`` (not ``clientContent``, see 3.1)."""
    return {"realtimeInput": {"text": text}}


def audio_stream_end() -> Message:
    """The audio input stopped (flushes server-side VAD)."""
    return {"realtimeInput": {"audioStreamEnd": True}}


def activity_start() -> Message:
    """Manual VAD: the user started speaking (only with automatic detection disabled)."""
    return {"realtimeInput": {"activityStart": {}}}


def activity_end() -> Message:
    """Manual VAD: the user stopped speaking."""
    return {"realtimeInput": {"activityEnd": {}}}


def client_content(turns: Sequence[tuple[str, str]], *, turn_complete: bool = True) -> Message:
    """``clientContent`` with ordered text turns given as (role, text) pairs."""
    return {
        "clientContent": {
            "turns": [{"role": role, "parts": [{"text": text}]} for role, text in turns],
            "turnComplete": turn_complete,
        }
    }


def tool_response(responses: Sequence[tuple[str, str, Mapping[str, Any]]], *, scheduling: str | None = None) -> Message:
    """``toolResponse`` for (id, name, response) triples; ``id`` is mandatory on the Gemini API.

    ``scheduling`` (``SILENT``, ``WHEN_IDLE``, ``INTERRUPT``) is for answers to
    NON_BLOCKING calls only: how the model takes the answer in while it goes on
    (SILENT: into its context, no new turn). None leaves it out (BLOCKING calls).
    """
    entries: list[dict[str, Any]] = []
    for call_id, name, response in responses:
        entry: dict[str, Any] = {"id": call_id, "name": name, "response": dict(response)}
        if scheduling is not None:
            entry["scheduling"] = scheduling
        entries.append(entry)
    return {"toolResponse": {"functionResponses": entries}}
