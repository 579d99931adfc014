"""What the REST emulator checks before it answers, in Google's words: the key, the body, the model.

Google's JSON parser refuses unknown fields (400 ``Invalid JSON payload
received. Unknown name``), a Live-only model answers 404 ``NOT_FOUND`` on
REST, a missing key 403 and a wrong one 400 ``API_KEY_INVALID`` (LIVE_API.md
§2). Each refusal is a :class:`GoogleError` carrying the status and the error
object to send. Pure functions: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from .live_catalogue import find_model, model_id

KNOWN_FIELDS = {"contents", "systemInstruction", "system_instruction", "generationConfig", "generation_config",
                "safetySettings", "safety_settings", "tools", "toolConfig", "tool_config", "cachedContent",
                "cached_content", "labels"}
BAD_KEY = "API key not valid. Please pass a valid API key."
NO_KEY = ("Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
          "or other form of API consumer identity to call this API.")


class GoogleError(Exception):
    """Answer with this HTTP status and Google's error object (``{"error": {code, message, status, details}}``)."""

    def __init__(self, status: int, google_status: str, message: str, details: list[Any] | None = None,
                 headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"code": status, "message": message, "status": google_status,
                               **({"details": details} if details else {})}}
        self.headers = list(headers)


def check_key(key: str, accepted: Sequence[str]) -> None:
    """Refuse a missing key (403) or one not in ``accepted`` (400; empty accepts any)."""
    if not key:
        raise GoogleError(403, "PERMISSION_DENIED", NO_KEY)
    if accepted and key not in accepted:
        raise bad_key()


def bad_key() -> GoogleError:
    """400 ``API_KEY_INVALID``, with the details Google sends."""
    return GoogleError(400, "INVALID_ARGUMENT", BAD_KEY, [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": BAD_KEY},
    ])


def is_live_only(model: str) -> bool:
    """Live-only names (the Live catalogue, or any ``-live``/``native-audio`` family) answer 404 on REST."""
    bare = model_id(model)
    return find_model(bare) is not None or "-live" in bare or "native-audio" in bare


def validate_generate(body: Any) -> tuple[list[bytes], str, str]:
    """The images, the text and the media resolution of a ``generateContent`` body; a
    :class:`GoogleError` (400, Google's wording) for what Google's parser refuses."""
    if not isinstance(body, dict):
        raise GoogleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    for name in body:
        if name not in KNOWN_FIELDS:
            raise GoogleError(400, "INVALID_ARGUMENT",
                              f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GoogleError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
    images: list[bytes] = []
    texts: list[str] = []
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise GoogleError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents.parts: must not be empty")
        for part in parts:
            blob = part.get("inlineData") or part.get("inline_data") if isinstance(part, dict) else None
            if blob is not None:
                mime = blob.get("mimeType") or blob.get("mime_type")
                if mime not in ("image/jpeg", "image/png", "image/webp"):
                    raise GoogleError(400, "INVALID_ARGUMENT", f"Unsupported MIME type: {mime}")
                try:
                    images.append(base64.b64decode(blob.get("data") or "", validate=True))
                except (binascii.Error, ValueError):
                    raise GoogleError(400, "INVALID_ARGUMENT", "Invalid value at 'contents.parts.inline_data.data' "
                                      "(TYPE_BYTES), Base64 decoding failed") from None
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise GoogleError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents.parts: empty part")
    config = body.get("generationConfig") or body.get("generation_config") or {}
    return images, "\n".join(texts), str(config.get("mediaResolution") or "MEDIA_RESOLUTION_MEDIUM")
