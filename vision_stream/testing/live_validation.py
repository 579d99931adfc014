"""Strict validation of client messages, the way Google's Live server judges them.

Every rejection is a :class:`Reject` carrying the close code and the reason
text Google sends (cut to 123 bytes, the WebSocket limit), plus a ``detail``
for the emulator's own log. Known texts (LIVE_API.md, public issue reports):

- bad key: 1007 "API key not valid. Please pass a valid API key."
- ``mediaChunks``: 1007 "realtime_input.media_chunks is deprecated. Use audio, video, or text instead."
- TEXT on a native-audio model: 1007 "Cannot extract voices from a non-audio request."
- unknown model: 1008 "models/x is not found for API version v1beta, or is not supported for bidiGenerateContent..."
- unknown field: 1007 proto JSON parser text ``Invalid JSON payload received. Unknown name ...``
- anything else invalid: 1007 "Request contains an invalid argument."

The server accepts camelCase and snake_case; we check both spellings.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INVALID_ARGUMENT = "Request contains an invalid argument."
BAD_KEY = "API key not valid. Please pass a valid API key."
NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
MEDIA_CHUNKS = "realtime_input.media_chunks is deprecated. Use audio, video, or text instead."
NON_AUDIO = "Cannot extract voices from a non-audio request."
MAX_REASON_BYTES = 123


def close_reason(text: str) -> str:
    """Cut to 123 UTF-8 bytes, as a close frame allows (Google's reasons get cut too)."""
    return text.encode("utf-8")[:MAX_REASON_BYTES].decode("utf-8", errors="ignore")


def model_not_found(model: str, api_version: str) -> str:
    return (
        f"{model} is not found for API version {api_version}, or is not supported for bidiGenerateContent. "
        "Call ListModels to see the list of available models and their supported methods."
    )


class Reject(Exception):
    """Close the connection with ``code`` and ``reason`` (already Google's text)."""

    def __init__(self, code: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{code} {reason} ({detail})" if detail else f"{code} {reason}")
        self.code = code
        self.reason = close_reason(reason)
        self.detail = detail or reason


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


# Schema: field name (camelCase) -> nested schema dict, or a type tag string.
_ANY = "any"
_STR = "str"
_BOOL = "bool"
_NUM = "num"
_INT = "int"  # proto3 JSON: a number or a decimal string
_EMPTY: dict[str, Any] = {}

_BLOB = {"mimeType": _STR, "data": "bytes", "displayName": _STR}
_PART = {
    "text": _STR,
    "inlineData": _BLOB,
    "thought": _BOOL,
    "functionCall": _ANY,
    "functionResponse": _ANY,
    "executableCode": _ANY,
    "codeExecutionResult": _ANY,
    "fileData": _ANY,
}
_CONTENT = {"role": _STR, "parts": [_PART]}
_FUNCTION_DECLARATION = {
    "name": _STR,
    "description": _STR,
    "parameters": _ANY,
    "parametersJsonSchema": _ANY,
    "response": _ANY,
    "responseJsonSchema": _ANY,
    "behavior": _STR,
}
_TOOL = {
    "functionDeclarations": [_FUNCTION_DECLARATION],
    "googleSearch": _ANY,
    "codeExecution": _ANY,
    "urlContext": _ANY,
    "googleSearchRetrieval": _ANY,
}
_SPEECH = {
    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": _STR}},
    "languageCode": _STR,
    "multiSpeakerVoiceConfig": _ANY,
}
_GENERATION = {
    "responseModalities": [_STR],
    "mediaResolution": _STR,
    "speechConfig": _SPEECH,
    "temperature": _NUM,
    "topP": _NUM,
    "topK": _NUM,
    "maxOutputTokens": _NUM,
    "candidateCount": _NUM,
    "presencePenalty": _NUM,
    "frequencyPenalty": _NUM,
    "seed": _NUM,
    "thinkingConfig": {"thinkingBudget": _NUM, "thinkingLevel": _STR, "includeThoughts": _BOOL},
    "enableAffectiveDialog": _BOOL,
}
_AAD = {
    "disabled": _BOOL,
    "startOfSpeechSensitivity": _STR,
    "endOfSpeechSensitivity": _STR,
    "prefixPaddingMs": _NUM,
    "silenceDurationMs": _NUM,
}
_TRANSCRIPTION_CONFIG = {"languageCodes": [_STR]}
SETUP = {
    "model": _STR,
    "generationConfig": _GENERATION,
    "systemInstruction": _CONTENT,
    "tools": [_TOOL],
    "realtimeInputConfig": {"automaticActivityDetection": _AAD, "activityHandling": _STR, "turnCoverage": _STR},
    "sessionResumption": {"handle": _STR, "transparent": _BOOL},
    "contextWindowCompression": {"slidingWindow": {"targetTokens": _INT}, "triggerTokens": _INT},
    "inputAudioTranscription": _TRANSCRIPTION_CONFIG,
    "outputAudioTranscription": _TRANSCRIPTION_CONFIG,
    "proactivity": {"proactiveAudio": _BOOL},
    "explicitVadSignal": _BOOL,
}
REALTIME_INPUT = {
    "video": _BLOB,
    "audio": _BLOB,
    "text": _STR,
    "audioStreamEnd": _BOOL,
    "activityStart": _EMPTY,
    "activityEnd": _EMPTY,
}
CLIENT_CONTENT = {"turns": [_CONTENT], "turnComplete": _BOOL}
TOOL_RESPONSE = {
    "functionResponses": [
        {"id": _STR, "name": _STR, "response": _ANY, "willContinue": _BOOL, "scheduling": _STR}
    ]
}
TOP_LEVEL = {
    "setup": SETUP,
    "clientContent": CLIENT_CONTENT,
    "realtimeInput": REALTIME_INPUT,
    "toolResponse": TOOL_RESPONSE,
}

ENUMS = {
    "responseModalities": {"AUDIO", "TEXT", "IMAGE"},
    "mediaResolution": {"MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM",
                        "MEDIA_RESOLUTION_HIGH"},
    "activityHandling": {"ACTIVITY_HANDLING_UNSPECIFIED", "START_OF_ACTIVITY_INTERRUPTS", "NO_INTERRUPTION"},
    "turnCoverage": {"TURN_COVERAGE_UNSPECIFIED", "TURN_INCLUDES_ONLY_ACTIVITY", "TURN_INCLUDES_ALL_INPUT",
                     "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"},
    "thinkingLevel": {"THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"},
    "role": {"user", "model"},
}


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A validated client message: its one top-level key and body (normalised to camelCase)."""

    kind: str
    body: dict[str, Any]


def parse_client_frame(frame: str | bytes) -> ClientMessage:
    """Validate one client frame against the schema; raises :class:`Reject`."""
    try:
        obj = json.loads(frame)
    except json.JSONDecodeError as exc:
        raise Reject(1007, f"Invalid JSON payload received. {exc.msg}.", str(exc)) from None
    except UnicodeDecodeError as exc:
        raise Reject(1007, "Invalid JSON payload received. Invalid UTF-8.", str(exc)) from None
    if not isinstance(obj, dict):
        raise Reject(1007, INVALID_ARGUMENT, "message is not a JSON object")
    normal = {camel(k): v for k, v in obj.items()}
    for key in normal:
        if key not in TOP_LEVEL:
            raise Reject(1007, f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.', key)
    if len(normal) != 1:
        raise Reject(1007, INVALID_ARGUMENT, f"exactly one top-level key expected, got {sorted(normal)}")
    (kind, body), = normal.items()
    if kind == "realtimeInput" and isinstance(body, Mapping) and ("mediaChunks" in body or "media_chunks" in body):
        raise Reject(1007, MEDIA_CHUNKS, "mediaChunks")
    checked = _check(body, TOP_LEVEL[kind], snake(kind))
    if kind == "realtimeInput" and len(checked) != 1:
        raise Reject(1007, INVALID_ARGUMENT, f"realtimeInput carries one field per message, got {sorted(checked)}")
    return ClientMessage(kind, checked)


def _check(value: Any, schema: Any, path: str) -> Any:
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise Reject(1007, f"Invalid value at '{path}', expected a list.", path)
        return [_check(v, schema[0], f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(schema, dict):
        if not isinstance(value, Mapping):
            raise Reject(1007, f"Invalid value at '{path}', expected an object.", path)
        out: dict[str, Any] = {}
        for key, sub in value.items():
            name = camel(key)
            if name not in schema:
                raise Reject(
                    1007, f"Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field.", path
                )
            if sub is None:
                # proto3 JSON: null means "absent"... except where newer models refuse it.
                out[name] = None
                continue
            out[name] = _check(sub, schema[name], f"{path}.{snake(name)}")
            allowed = ENUMS.get(name)
            if allowed is not None:
                for item in out[name] if isinstance(out[name], list) else [out[name]]:
                    if item not in allowed:
                        raise Reject(1007, f"Invalid value at '{path}.{snake(name)}' ({name}), \"{item}\"", name)
        return out
    if schema == _ANY:
        return value
    if schema == _STR and not isinstance(value, str):
        raise Reject(1007, f"Invalid value at '{path}' (TYPE_STRING), {json.dumps(value)[:40]}", path)
    if schema == _BOOL and not isinstance(value, bool):
        raise Reject(1007, f"Invalid value at '{path}' (TYPE_BOOL), {json.dumps(value)[:40]}", path)
    if schema == _NUM and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise Reject(1007, f"Invalid value at '{path}' (TYPE_NUMBER), {json.dumps(value)[:40]}", path)
    if schema == _INT and not ((isinstance(value, int) and not isinstance(value, bool))
                               or (isinstance(value, str) and value.strip().lstrip("-").isdigit())):
        raise Reject(1007, f"Invalid value at '{path}' (TYPE_INT64), {json.dumps(value)[:40]}", path)
    if schema == "bytes":
        if not isinstance(value, str):
            raise Reject(1007, f"Invalid value at '{path}' (TYPE_BYTES)", path)
        return decode_b64(value, path)
    return value


def decode_b64(value: str, path: str) -> bytes:
    """Proto3 JSON bytes: standard or URL-safe base64; padding optional."""
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise Reject(1007, f"Invalid value at '{path}' (TYPE_BYTES), Base64 decoding failed for \"{value[:20]}\"",
                     path) from None


_AUDIO_MIME = re.compile(r"^audio/pcm;\s*rate=(\d+)$")


def audio_rate(mime_type: str) -> int:
    """Hz from ``audio/pcm;rate=N``; raises :class:`Reject` for any other audio type."""
    match = _AUDIO_MIME.match(mime_type.strip())
    if match is None or not 8000 <= int(match.group(1)) <= 48000:
        raise Reject(1007, INVALID_ARGUMENT, f"audio mimeType must be audio/pcm;rate=N, got {mime_type!r}")
    return int(match.group(1))
