"""Internal values to the protobuf API (``vision_stream.v1``), for every side.

The CLI prints events it made itself, the client sends a sampling policy and
the server streams events: all through these functions, so ``client.py`` and
the CLI never import ``server/``. What only a server does with protobuf
(validating a client's ``SessionConfig``) is in ``server/convert.py``.

The event dataclasses and their ``pb`` messages share field names, so most
payloads convert as ``pb.X(**asdict(x))`` (nested dataclasses become dicts,
which protobuf's constructors accept for message fields). The exceptions are
spelled out: a transcript's source is an enum on the wire, an error message is
scrubbed, and the sampling policy has a field the wire does not carry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from . import events as ev
from .conditions.model import Condition
from .config import SamplingPolicy
from .redact import scrub
from .v1 import vision_stream_pb2 as pb

if TYPE_CHECKING:
    from .snapshot import SnapshotResult

_TRANSCRIPT_SOURCE: dict[str, pb.Transcript.Source] = {
    "input": pb.Transcript.SOURCE_INPUT,
    "output": pb.Transcript.SOURCE_OUTPUT,
}


def sampling_to_proto(policy: SamplingPolicy) -> pb.SamplingConfig:
    """The wire form of a policy (``probe_fps`` is the server's own: not sent)."""
    return pb.SamplingConfig(
        fps=policy.fps,
        max_fps=policy.max_fps,
        scene_threshold=policy.scene_threshold,
        max_side=policy.max_side,
        jpeg_quality=policy.jpeg_quality,
    )


def stats_to_proto(stats: ev.Stats) -> pb.Stats:
    return pb.Stats(**asdict(stats))


def detection_to_proto(detection: ev.Detection) -> pb.Detection:
    return pb.Detection(**asdict(detection))


def snapshot_to_proto(result: SnapshotResult) -> pb.SnapshotResponse:
    """The ``AnalyzeSnapshot`` answer (the server's, and what ``vision-stream snapshot`` prints)."""
    return pb.SnapshotResponse(text=result.text, detections=[detection_to_proto(d) for d in result.detections],
                               backend=result.backend, model=result.model)


def _session_started(p: ev.SessionStarted) -> pb.SessionStarted:
    msg = pb.SessionStarted(source=p.source, backend=p.backend, model=p.model,
                            commentary_interval=p.commentary_interval)
    if p.sampling is not None:
        msg.sampling.CopyFrom(sampling_to_proto(p.sampling))
    return msg


def _transcript(p: ev.Transcript) -> pb.Transcript:
    return pb.Transcript(source=_TRANSCRIPT_SOURCE.get(p.source, pb.Transcript.SOURCE_UNSPECIFIED),
                         text=p.text, final=p.final)


def _error(p: ev.ErrorEvent) -> pb.Error:
    # Error texts may quote a peer's own words (FFmpeg, httpx): the one redaction.
    return pb.Error(code=p.code, message=scrub(p.message), retryable=p.retryable)


_ALERT_STATE: dict[str, pb.Alert.State] = {"fired": pb.Alert.STATE_FIRED, "resolved": pb.Alert.STATE_RESOLVED}


def alert_to_proto(p: ev.Alert) -> pb.Alert:
    """The state is an enum on the wire; the evidence may quote a peer (a model's words): scrubbed."""
    fields = asdict(p)
    fields["state"] = _ALERT_STATE.get(p.state, pb.Alert.STATE_UNSPECIFIED)
    fields["evidence"] = scrub(p.evidence)
    return pb.Alert(**fields)


def condition_to_proto(condition: Condition) -> pb.WatchCondition:
    """A condition as a client sends it (built-in health conditions are the server's own)."""
    msg = pb.WatchCondition(id=condition.id, text=condition.text, cooldown_seconds=condition.cooldown,
                            min_confidence=condition.min_confidence, max_triggers=condition.max_triggers,
                            verify=condition.verify, notify_resolved=condition.notify_resolved)
    if condition.until is not None:
        nanos = int(condition.until * 1e9)
        msg.until.seconds, msg.until.nanos = divmod(nanos, 1_000_000_000)
    return msg


def _same_names(message: type[Any]) -> Callable[[Any], Any]:
    return lambda payload: message(**asdict(payload))


# Payload type -> its pb message; it goes in the pb.Event oneof field named
# ``Event.kind`` (events.py names kinds after the oneof fields).
_PAYLOADS: dict[type, Callable[[Any], Any]] = {
    ev.SessionStarted: _session_started,
    ev.Commentary: _same_names(pb.Commentary),
    ev.Transcript: _transcript,
    ev.Detection: detection_to_proto,
    ev.AudioOut: _same_names(pb.AudioOut),
    ev.BackendChanged: _same_names(pb.BackendChanged),
    ev.Stats: stats_to_proto,
    ev.ErrorEvent: _error,
    ev.SessionEnded: _same_names(pb.SessionEnded),
    ev.Alert: alert_to_proto,
}


def event_to_proto(event: ev.Event) -> pb.Event:
    msg = pb.Event(session_id=event.session_id, seq=event.seq, run_id=event.run_id)
    nanos = int(event.wall_time * 1e9)
    msg.wall_time.seconds, msg.wall_time.nanos = divmod(nanos, 1_000_000_000)
    if event.media_time is not None:
        msg.media_time = round(event.media_time, 6)
    getattr(msg, event.kind).CopyFrom(_PAYLOADS[type(event.payload)](event.payload))
    return msg


def event_to_wire(event: ev.Event) -> bytes:
    """The serialized ``pb.Event``: what the event streams send (computed once per
    event and shared by every subscriber, see ``EventLog.follow_encoded``)."""
    return event_to_proto(event).SerializeToString()
