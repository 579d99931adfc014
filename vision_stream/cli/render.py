"""Printing events: protobuf JSON lines (``--json``) or a readable live view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from ..v1 import vision_stream_pb2 as pb

__all__ = ["Printer", "event_json", "event_line", "print_snapshot"]


class Printer:
    """Prints events: every event as JSON, or the readable view.

    The readable view shows a turn's final commentary only: partial chunks
    repeat the turn so far and would flood a terminal (``--json`` has them).
    """

    def __init__(self, as_json: bool) -> None:
        self._as_json = as_json
        self._format: Callable[[pb.Event], str] = event_json if as_json else event_line

    def __call__(self, event: pb.Event) -> None:
        if not self._as_json and event.HasField("commentary") and not event.commentary.final:
            return
        print(self._format(event), flush=True)


def event_json(event: pb.Event) -> str:
    """One line of protobuf's canonical JSON mapping (camelCase field names)."""
    return json_format.MessageToJson(event, indent=None, ensure_ascii=False)


def _region(d: pb.Detection) -> str:
    if not d.HasField("region"):
        return ""
    r = d.region
    return f" @({r.x:.2f},{r.y:.2f} {r.width:.2f}x{r.height:.2f})"


def _stats(s: pb.Stats) -> str:
    line = (f"frames in/sampled/sent/dropped {s.frames_in}/{s.frames_sampled}/{s.frames_sent}/"
            f"{s.frames_dropped}, audio {s.audio_chunks_sent}, bad packets {s.bad_packets}")
    if s.source_state:
        line += f", source {s.source_state}"
        if s.source_recoveries:
            line += f" (last outage {s.source_outage_seconds:.1f} s)"
    return line


def _session_ended(p: pb.SessionEnded) -> str:
    s = p.totals
    return (f"{p.reason}: {s.media_seconds:.1f}s of media, {s.frames_sent} frames sent, "
            f"{s.frames_dropped} dropped, {s.events} events")


# The readable text of each payload, by its name in the ``payload`` oneof.
_PAYLOADS: dict[str, Callable[[Any], str]] = {
    "session_started": lambda p: f"{p.source} via {p.backend}{' (' + p.model + ')' if p.model else ''}",
    "commentary": lambda p: f"{'' if p.final else '… '}{p.text}",
    "transcript": lambda p: f"({'heard' if p.source == pb.Transcript.SOURCE_INPUT else 'model'}) {p.text}",
    "detection": lambda p: f"{p.label} [{p.severity}, {p.confidence:.2f}]{_region(p)} {p.description}",
    "audio_out": lambda p: f"{len(p.pcm_s16le) // 2} samples at {p.sample_rate} Hz",
    "backend_changed": lambda p: f"{p.from_backend} -> {p.to_backend}: {p.reason}",
    "stats": _stats,
    "error": lambda p: f"{p.code}{' (retryable)' if p.retryable else ''}: {p.message}",
    "session_ended": _session_ended,
}


def event_line(event: pb.Event) -> str:
    """A compact human-readable line for one event: time, number, kind, then the payload's text."""
    t = f"{event.media_time:7.1f}s" if event.HasField("media_time") else "       -"
    kind = event.WhichOneof("payload") or "?"
    head = f"[{t}] #{event.seq:<4} {kind:<15}"
    text = _PAYLOADS.get(kind)
    return f"{head} {text(getattr(event, kind))}" if text is not None else head


def print_snapshot(response: pb.SnapshotResponse, *, as_json: bool) -> None:
    """An ``AnalyzeSnapshot`` answer: one JSON line, or the text and a line per detection."""
    if as_json:
        print(json_format.MessageToJson(response, indent=None))
        return
    print(response.text)
    for d in response.detections:
        print(f"- {d.label} [{d.severity}, {d.confidence:.2f}] {d.description}")
