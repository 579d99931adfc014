"""Conversion between internal values and the protobuf API (vision_stream.v1)."""

from __future__ import annotations

import json
import re

from .. import events as ev
from ..config import DEFAULT_COMMENTARY_INTERVAL, FunctionSpec, SamplingPolicy, SessionSettings
from ..errors import InvalidInputError, UsageError, quote
from ..redact import scrub
from ..v1 import vision_stream_pb2 as pb

_SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
BACKENDS = ("auto", "live", "rest", "local")

_TRANSCRIPT_SOURCE: dict[str, pb.Transcript.Source] = {
    "input": pb.Transcript.SOURCE_INPUT,
    "output": pb.Transcript.SOURCE_OUTPUT,
}


def sampling_to_proto(policy: SamplingPolicy) -> pb.SamplingConfig:
    return pb.SamplingConfig(
        fps=policy.fps,
        max_fps=policy.max_fps,
        scene_threshold=policy.scene_threshold,
        max_side=policy.max_side,
        jpeg_quality=policy.jpeg_quality,
    )


def sampling_from_proto(msg: pb.SamplingConfig, default: SamplingPolicy) -> SamplingPolicy:
    """Fields left at 0 keep the server's defaults."""
    fps = msg.fps or default.fps
    try:
        return SamplingPolicy(
            fps=fps,
            max_fps=msg.max_fps or max(default.max_fps, fps),
            scene_threshold=msg.scene_threshold or default.scene_threshold,
            probe_fps=default.probe_fps,
            max_side=msg.max_side or default.max_side,
            jpeg_quality=msg.jpeg_quality or default.jpeg_quality,
        )
    except UsageError as exc:
        raise InvalidInputError(f"config.sampling: {exc.message}") from exc


def session_from_proto(
    msg: pb.SessionConfig, *, session_id: str, source: str, default_sampling: SamplingPolicy,
    default_interval: float = DEFAULT_COMMENTARY_INTERVAL,
) -> tuple[SessionSettings, SamplingPolicy, str]:
    """Validate a client's SessionConfig: (settings, sampling policy, backend name)."""
    backend = msg.backend or "auto"
    if backend not in BACKENDS:
        raise InvalidInputError(f"config.backend must be one of {', '.join(BACKENDS)}, got {quote(backend)}")
    functions = []
    for index, fn in enumerate(msg.functions):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", fn.name):
            raise InvalidInputError(
                f"config.functions[{index}].name is not a valid function name: {quote(fn.name)}")
        params = json_object(fn.parameters_json, f"config.functions[{index}].parameters_json")
        functions.append(FunctionSpec(name=fn.name, description=fn.description, parameters=params))
    sampling = sampling_from_proto(msg.sampling, default_sampling)
    try:
        settings = SessionSettings(
            session_id=session_id,
            source_description=source,
            commentary_interval=msg.commentary_interval or default_interval,
            persona=msg.persona,
            language=msg.language or "en-US",
            want_audio_out=msg.want_audio_out,
            functions=tuple(functions),
            model=msg.model,
        )
    except UsageError as exc:
        raise InvalidInputError(f"config: {exc.message}") from exc
    return settings, sampling, backend


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


def stats_to_proto(stats: ev.Stats) -> pb.Stats:
    return pb.Stats(
        frames_in=stats.frames_in,
        frames_sampled=stats.frames_sampled,
        frames_sent=stats.frames_sent,
        frames_dropped=stats.frames_dropped,
        audio_chunks_in=stats.audio_chunks_in,
        audio_chunks_sent=stats.audio_chunks_sent,
        audio_chunks_dropped=stats.audio_chunks_dropped,
        bad_packets=stats.bad_packets,
        prompts_sent=stats.prompts_sent,
        events=stats.events,
        media_seconds=stats.media_seconds,
        encode_ms_p50=stats.encode_ms_p50,
        encode_ms_p99=stats.encode_ms_p99,
        prompt_tokens=stats.prompt_tokens,
        response_tokens=stats.response_tokens,
        reconnects=stats.reconnects,
        fps_in=stats.fps_in,
        fps_out=stats.fps_out,
        source_state=stats.source_state,
        source_outage_seconds=stats.source_outage_seconds,
        source_recoveries=stats.source_recoveries,
    )


def region_to_proto(region: ev.Region | None) -> pb.Region | None:
    if region is None:
        return None
    return pb.Region(x=region.x, y=region.y, width=region.width, height=region.height)


def detection_to_proto(d: ev.Detection) -> pb.Detection:
    return pb.Detection(
        label=d.label,
        description=d.description,
        severity=d.severity,
        confidence=d.confidence,
        region=region_to_proto(d.region),
        backend=d.backend,
        function_name=d.function_name,
        call_id=d.call_id,
        arguments_json=d.arguments_json,
    )


def event_to_proto(event: ev.Event) -> pb.Event:
    msg = pb.Event(session_id=event.session_id, seq=event.seq)
    nanos = int(event.wall_time * 1e9)
    msg.wall_time.seconds, msg.wall_time.nanos = divmod(nanos, 1_000_000_000)
    if event.media_time is not None:
        msg.media_time = round(event.media_time, 6)
    p = event.payload
    if isinstance(p, ev.SessionStarted):
        started = msg.session_started
        started.source = p.source
        started.backend = p.backend
        started.model = p.model
        started.commentary_interval = p.commentary_interval
        if isinstance(p.sampling, SamplingPolicy):
            started.sampling.CopyFrom(sampling_to_proto(p.sampling))
    elif isinstance(p, ev.Commentary):
        msg.commentary.CopyFrom(pb.Commentary(text=p.text, final=p.final, turn_id=p.turn_id, backend=p.backend))
    elif isinstance(p, ev.Transcript):
        msg.transcript.CopyFrom(
            pb.Transcript(
                source=_TRANSCRIPT_SOURCE.get(p.source, pb.Transcript.SOURCE_UNSPECIFIED), text=p.text, final=p.final
            )
        )
    elif isinstance(p, ev.Detection):
        msg.detection.CopyFrom(detection_to_proto(p))
    elif isinstance(p, ev.AudioOut):
        msg.audio_out.CopyFrom(pb.AudioOut(pcm_s16le=p.pcm_s16le, sample_rate=p.sample_rate, turn_id=p.turn_id))
    elif isinstance(p, ev.BackendChanged):
        msg.backend_changed.CopyFrom(
            pb.BackendChanged(from_backend=p.from_backend, to_backend=p.to_backend, reason=p.reason)
        )
    elif isinstance(p, ev.Stats):
        msg.stats.CopyFrom(stats_to_proto(p))
    elif isinstance(p, ev.ErrorEvent):
        # Error texts may quote a peer's own words (FFmpeg, httpx): the one redaction.
        msg.error.CopyFrom(pb.Error(code=p.code, message=scrub(p.message), retryable=p.retryable))
    elif isinstance(p, ev.SessionEnded):
        msg.session_ended.CopyFrom(pb.SessionEnded(reason=p.reason, totals=stats_to_proto(p.totals)))
    return msg


def event_to_wire(event: ev.Event) -> bytes:
    """The serialized ``pb.Event``: what the event streams send (computed once per
    event and shared by every subscriber, see ``EventLog.follow_encoded``)."""
    return event_to_proto(event).SerializeToString()
