"""What a server makes of a client's protobuf: a validated ``SessionConfig``.

Values the client left at their proto3 zero are not given: the server's
defaults apply (``SamplingPolicy.updated``, the dataclasses' own defaults).
Internal values to protobuf, for every side, are in ``vision_stream.proto``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..backends.factory import BACKEND_NAMES
from ..backends.gemini_live.models import BUILTIN_TOOLS
from ..conditions.model import MAX_CONDITIONS, Condition, check_conditions, default_id
from ..config import DEFAULT_COMMENTARY_INTERVAL, FunctionSpec, SamplingPolicy, SessionSettings
from ..errors import InvalidInputError, UsageError, quote
from ..v1 import vision_stream_pb2 as pb

_SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def sampling_from_proto(msg: pb.SamplingConfig, default: SamplingPolicy) -> SamplingPolicy:
    """Fields left at 0 keep the server's defaults."""
    try:
        return default.updated(
            fps=msg.fps or None, max_fps=msg.max_fps or None, scene_threshold=msg.scene_threshold or None,
            max_side=msg.max_side or None, jpeg_quality=msg.jpeg_quality or None,
        )
    except UsageError as exc:
        raise InvalidInputError(f"config.sampling: {exc.message}") from exc


def session_from_proto(
    msg: pb.SessionConfig, *, session_id: str, source: str, default_sampling: SamplingPolicy,
    default_interval: float = DEFAULT_COMMENTARY_INTERVAL,
) -> tuple[SessionSettings, SamplingPolicy, str]:
    """Validate a client's SessionConfig: (settings, sampling policy, backend name)."""
    backend = msg.backend or "auto"
    if backend not in BACKEND_NAMES:
        raise InvalidInputError(f"config.backend must be one of {', '.join(BACKEND_NAMES)}, got {quote(backend)}")
    functions = []
    for index, fn in enumerate(msg.functions):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", fn.name):
            raise InvalidInputError(
                f"config.functions[{index}].name is not a valid function name: {quote(fn.name)}")
        params = json_object(fn.parameters_json, f"config.functions[{index}].parameters_json")
        functions.append(FunctionSpec(name=fn.name, description=fn.description, parameters=params))
    sampling = sampling_from_proto(msg.sampling, default_sampling)
    tools = builtin_tools(msg.tools)
    # An empty language is not given: SessionSettings' default applies.
    language: dict[str, Any] = {"language": msg.language} if msg.language else {}
    try:
        settings = SessionSettings(
            session_id=session_id,
            source_description=source,
            commentary_interval=msg.commentary_interval or default_interval,
            persona=msg.persona,
            want_audio_out=msg.want_audio_out,
            functions=tuple(functions),
            model=msg.model,
            voice=msg.voice,
            media_resolution=msg.media_resolution,
            tools=tools,
            max_cost_per_hour=msg.max_cost_per_hour,
            max_tokens_per_hour=msg.max_tokens_per_hour,
            conditions=conditions_from_proto(msg.conditions, "config.conditions"),
            **language,
        )
    except UsageError as exc:
        raise InvalidInputError(f"config: {exc.message}") from exc
    return settings, sampling, backend


def conditions_from_proto(msgs: Sequence[pb.WatchCondition], where: str) -> tuple[Condition, ...]:
    """A client's watch conditions, validated (InvalidInputError names ``where[i].field``).
    Zero fields keep the defaults (cooldown 60 s, min_confidence 0.5); an empty id gets one
    from the words."""
    if len(msgs) > MAX_CONDITIONS:
        raise InvalidInputError(f"{where} holds {len(msgs)} entries; at most {MAX_CONDITIONS} per session")
    out = []
    for index, msg in enumerate(msgs):
        kwargs: dict[str, Any] = {"id": msg.id or default_id(msg.text, index), "text": msg.text,
                                  "max_triggers": msg.max_triggers, "verify": msg.verify,
                                  "notify_resolved": msg.notify_resolved}
        if msg.cooldown_seconds:
            kwargs["cooldown"] = msg.cooldown_seconds
        if msg.min_confidence:
            kwargs["min_confidence"] = msg.min_confidence
        if msg.HasField("until"):
            kwargs["until"] = msg.until.ToNanoseconds() / 1e9
        try:
            out.append(Condition(**kwargs))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}[{index}]: {exc.message}") from exc
    try:
        return check_conditions(out)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc.message}") from exc


def builtin_tools(names: Iterable[str]) -> tuple[str, ...]:
    """``config.tools`` checked by name (whether the model has them is checked when the
    session opens, against its capability table)."""
    tools = tuple(dict.fromkeys(name.strip().lower() for name in names))
    if len(tools) > len(BUILTIN_TOOLS):
        raise InvalidInputError(f"config.tools holds {len(tools)} entries; tools: {', '.join(BUILTIN_TOOLS)}")
    for index, name in enumerate(tools):
        if name not in BUILTIN_TOOLS:
            raise InvalidInputError(
                f"config.tools[{index}] is not a known tool: {quote(name)}; tools: {', '.join(BUILTIN_TOOLS)}")
    return tools


def json_object(text: str, where: str) -> dict[str, object]:
    """A client's JSON object field (empty = ``{}``), or InvalidInputError naming ``where``.

    ``json.loads`` raises RecursionError (not JSONDecodeError) for input nested
    deeper than the interpreter's recursion limit (about 1000 levels):
    both are refused the same way.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{where} is not JSON: {exc.msg} at character {exc.pos}") from exc
    except RecursionError:
        raise InvalidInputError(f"{where} is nested too deeply to parse") from None
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be a JSON object")
    return value


def check_session_id(session_id: str) -> str:
    if not _SESSION_ID.fullmatch(session_id):
        raise InvalidInputError(
            f"config.session_id must be 1-64 letters, digits, '.', '_' or '-', got {quote(session_id)}"
        )
    return session_id
