"""Server -> client messages of ``BidiGenerateContent`` as typed values, and their parser.

Wire facts (LIVE_API.md "Framing", "Server messages"): the server sends JSON in
text or (usually) binary frames, pretty-printed; lowerCamelCase keys; several
top-level keys may share one message (``serverContent`` + ``usageMetadata``);
unknown keys must be ignored (fields keep being added); int64 values may arrive
as strings; durations are strings like ``"50s"``; proto3 JSON omits defaults
(``false``, ``""``, ``0``), so an absent flag is false.

Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ProtocolError
from ...usage import Usage, usage_from_metadata
from ..gemini_api import parse_duration

KNOWN_TOP_LEVEL_KEYS = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
        "usageMetadata",
    }
)


@dataclass(frozen=True, slots=True)
class SetupComplete:
    """``setupComplete`` ({} on the Gemini API; Vertex adds ``sessionId``)."""

    session_id: str = ""


@dataclass(frozen=True, slots=True)
class InlineData:
    """``inlineData`` of a part: decoded bytes and their MIME type (``audio/pcm;rate=24000``)."""

    mime_type: str
    data: bytes

    @property
    def sample_rate(self) -> int | None:
        """Hz from ``audio/pcm;rate=N``, or None when the type carries no rate."""
        match = re.search(r"rate=(\d+)", self.mime_type)
        return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class Part:
    """One ``modelTurn`` part. Exactly one of the payload fields is usually set."""

    text: str | None = None
    inline_data: InlineData | None = None
    thought: bool = False
    executable_code: Mapping[str, Any] | None = None
    code_execution_result: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Transcription:
    """``inputTranscription`` / ``outputTranscription``: a text chunk (a delta)."""

    text: str
    finished: bool = False


# ``serverContent.interactionStatus`` (3.8; always sent with ``turnComplete``).
IN_PROGRESS = "IN_PROGRESS"  # the model goes on working: the turnComplete closed an output chunk only
REQUIRES_ACTION = "REQUIRES_ACTION"  # it waits for us (a tool response) before going on
IDLE = "IDLE"  # the model is done until new input


@dataclass(frozen=True, slots=True)
class ServerContent:
    """``serverContent``: model output and turn boundaries.

    interaction_status: "" when not sent (models before 3.8: a ``turnComplete``
        ends the turn), else ``IN_PROGRESS`` / ``REQUIRES_ACTION`` / ``IDLE``.
    turn_complete_reason: why the turn ended (``NEED_MORE_INPUT``,
        ``MALFORMED_FUNCTION_CALL``, ``RESPONSE_REJECTED``, ...), "" when not sent.
    waiting_for_input: the model waits for the user's input.
    """

    parts: tuple[Part, ...] = ()
    generation_complete: bool = False
    turn_complete: bool = False
    interrupted: bool = False
    input_transcription: Transcription | None = None
    output_transcription: Transcription | None = None
    turn_complete_reason: str = ""
    grounding_metadata: Mapping[str, Any] | None = None
    waiting_for_input: bool = False
    interaction_status: str = ""

    @property
    def model_still_working(self) -> bool:
        """A ``turnComplete`` here closes an output chunk only: more output or tool
        calls of the same turn follow (``IN_PROGRESS``/``REQUIRES_ACTION``), unless
        the model says it waits for input."""
        return self.interaction_status in (IN_PROGRESS, REQUIRES_ACTION) and not self.waiting_for_input


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """One call of ``toolCall.functionCalls``; ``id`` must be echoed in the response."""

    id: str
    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    function_calls: tuple[FunctionCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolCallCancellation:
    ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GoAway:
    """``goAway``: the connection will close in ``time_left`` seconds (None if not given)."""

    time_left: float | None = None


@dataclass(frozen=True, slots=True)
class SessionResumptionUpdate:
    """``sessionResumptionUpdate``: keep ``new_handle`` only when ``resumable``."""

    new_handle: str = ""
    resumable: bool = False
    last_consumed_client_message_index: int | None = None


@dataclass(frozen=True, slots=True)
class UsageMetadata:
    """Token counts of one turn (Vertex names the response count ``candidatesTokenCount``)."""

    prompt_token_count: int = 0
    response_token_count: int = 0
    total_token_count: int = 0
    usage: Usage = field(default_factory=Usage)  # by kind, per modality (vision_stream.usage)


@dataclass(frozen=True, slots=True)
class ServerMessage:
    """One parsed server frame; each field is None when its key was absent."""

    setup_complete: SetupComplete | None = None
    server_content: ServerContent | None = None
    tool_call: ToolCall | None = None
    tool_call_cancellation: ToolCallCancellation | None = None
    go_away: GoAway | None = None
    session_resumption_update: SessionResumptionUpdate | None = None
    usage_metadata: UsageMetadata | None = None
    unknown_keys: tuple[str, ...] = ()


def parse_server_message(frame: str | bytes) -> ServerMessage:
    """Parse one whole server frame (text or binary, compact or pretty-printed).

    Raises :class:`ProtocolError` when the frame is not a JSON object or a known
    field has the wrong type. Unknown keys are kept by name only, never fatal.
    """
    try:
        obj = json.loads(frame)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"server sent a frame that is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"server sent JSON that is not an object: {type(obj).__name__}")
    try:
        return _message(obj)
    except (TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise ProtocolError(f"server message has a malformed field: {exc}") from exc


def _message(obj: Mapping[str, Any]) -> ServerMessage:
    def get(key: str) -> Mapping[str, Any] | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise TypeError(f"{key} must be an object, got {type(value).__name__}")
        return value

    setup = get("setupComplete")
    content = get("serverContent")
    tool_call = get("toolCall")
    cancel = get("toolCallCancellation")
    go_away = get("goAway")
    resumption = get("sessionResumptionUpdate")
    usage = get("usageMetadata")
    return ServerMessage(
        setup_complete=None if setup is None else SetupComplete(str(setup.get("sessionId", ""))),
        server_content=None if content is None else _server_content(content),
        tool_call=None if tool_call is None else _tool_call(tool_call),
        tool_call_cancellation=(
            None if cancel is None else ToolCallCancellation(tuple(str(i) for i in cancel.get("ids", ())))
        ),
        go_away=None if go_away is None else GoAway(parse_duration(go_away.get("timeLeft"))),
        session_resumption_update=None if resumption is None else _resumption(resumption),
        usage_metadata=None if usage is None else _usage(usage),
        unknown_keys=tuple(sorted(k for k in obj if k not in KNOWN_TOP_LEVEL_KEYS)),
    )


def _server_content(obj: Mapping[str, Any]) -> ServerContent:
    model_turn = obj.get("modelTurn") or {}
    parts = tuple(_part(p) for p in model_turn.get("parts", ()))
    return ServerContent(
        parts=parts,
        generation_complete=bool(obj.get("generationComplete", False)),
        turn_complete=bool(obj.get("turnComplete", False)),
        interrupted=bool(obj.get("interrupted", False)),
        input_transcription=_transcription(obj.get("inputTranscription")),
        output_transcription=_transcription(obj.get("outputTranscription")),
        turn_complete_reason=str(obj.get("turnCompleteReason", "")),
        grounding_metadata=obj.get("groundingMetadata"),
        waiting_for_input=bool(obj.get("waitingForInput", False)),
        interaction_status=str(obj.get("interactionStatus", "") or ""),
    )


def _part(obj: Mapping[str, Any]) -> Part:
    inline = obj.get("inlineData")
    inline_data = None
    if inline is not None:
        # Standard base64 per proto3 JSON; accept URL-safe too (proto3 allows both).
        raw = str(inline.get("data", ""))
        inline_data = InlineData(
            mime_type=str(inline.get("mimeType", "")),
            data=base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4)),
        )
    text = obj.get("text")
    return Part(
        text=None if text is None else str(text),
        inline_data=inline_data,
        thought=bool(obj.get("thought", False)),
        executable_code=obj.get("executableCode"),
        code_execution_result=obj.get("codeExecutionResult"),
    )


def _transcription(obj: Any) -> Transcription | None:
    if obj is None:
        return None
    return Transcription(text=str(obj.get("text", "")), finished=bool(obj.get("finished", False)))


def _tool_call(obj: Mapping[str, Any]) -> ToolCall:
    calls = []
    for call in obj.get("functionCalls", ()):
        args = call.get("args") or {}
        if not isinstance(args, Mapping):
            raise TypeError("functionCalls[].args must be an object")
        calls.append(FunctionCall(id=str(call.get("id", "")), name=str(call.get("name", "")), args=dict(args)))
    return ToolCall(tuple(calls))


def _resumption(obj: Mapping[str, Any]) -> SessionResumptionUpdate:
    index = obj.get("lastConsumedClientMessageIndex")
    return SessionResumptionUpdate(
        new_handle=str(obj.get("newHandle", "") or ""),
        resumable=bool(obj.get("resumable", False)),
        last_consumed_client_message_index=None if index is None else parse_int(index),
    )


def _usage(obj: Mapping[str, Any]) -> UsageMetadata:
    response = obj.get("responseTokenCount", obj.get("candidatesTokenCount", 0))
    return UsageMetadata(
        prompt_token_count=parse_int(obj.get("promptTokenCount", 0)),
        response_token_count=parse_int(response),
        total_token_count=parse_int(obj.get("totalTokenCount", 0)),
        usage=usage_from_metadata(obj),
    )


def parse_int(value: Any) -> int:
    """An int32/int64 from proto3 JSON: a number or a decimal string (int64 is a string)."""
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(f"expected an integer, got {value!r}")
