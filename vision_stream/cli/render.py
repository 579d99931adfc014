"""Printing events: protobuf JSON lines (``--json``) or a readable live view.

The readable view prints each event as it arrives (a live view is never held
back to be sorted) and keeps its time column a timeline:

- **Media time never runs backwards.** Most events are produced in media-time
  order and print with their stamp. An event stamped earlier than one already
  printed (a model answering about frames it was sent before the last
  ``stats``) prints ``late`` in the time column instead; ``--json`` keeps its
  media time.
- **Hidden partials are not seq gaps.** Partial commentary chunks repeat the
  turn so far and would flood a terminal, so only a turn's final text is
  shown; the next printed line says how many updates were hidden, which is
  what its seq skips over (``--json`` has them all, gap-free).
- **The session id comes first**: in the ``session_started`` line, or in a
  header line when the view joins later (``follow --after``).

A file replayed in a terminal also gets a progress bar with ETA on stderr (tqdm)
(:func:`progress_for`), and a watched or followed camera a live status line
(:func:`status_line_for`), never when stdout or stderr is piped.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format
from tqdm import tqdm

from ..v1 import vision_stream_pb2 as pb

__all__ = ["LEGEND", "Printer", "Progress", "StatusLine", "event_json", "event_line", "print_snapshot", "progress_for",
           "status_line_for"]

LEGEND = """\
reading the output (--json instead prints every event, one protobuf JSON line each):
  [   12.0s] #15 kind    media time (seconds into the source), the event's seq, its kind;
                         "-": no media time (session_started); "late": stamped earlier
                         than a line already printed (a model answering about earlier
                         frames), so the time column never runs backwards
  session ID: SOURCE via BACKEND   the first line; ID is what follow/stop take
  motion [low, 1.00]               detection: label [severity info/low/medium/high, confidence 0..1]
  @(0.09,0.11 0.66x0.59)           its box: left,top width x height, fractions of the frame
  frames in/sampled/sent/dropped   decoded by the source / chosen by sampling / sent to the
                                   analysis / dropped because it was busy (newest frame wins)
  audio 201                        audio chunks sent to the analysis (50 ms of 16 kHz PCM each)
  (+N partial updates hidden)      partial commentary chunks not shown (the seq skips them)
"""

_LATE = "   late "  # as wide as the "{:7.1f}s" stamp
_NO_TIME = "       -"


class Printer:
    """Prints events: every event as JSON, or the readable view (module docstring).

    ``progress``: a bar on stderr to redraw under the printed lines (file replays in a terminal).
    """

    def __init__(self, as_json: bool, *, progress: Progress | StatusLine | None = None,
                 out: TextIO | None = None) -> None:
        self._as_json = as_json
        self._progress = progress
        self._out = out
        self._clock: float | None = None  # the latest media time printed
        self._hidden = 0  # partial commentary chunks hidden since the last printed line
        self._started = False

    def __call__(self, event: pb.Event) -> None:
        if self._as_json:
            self._emit(event_json(event))
            return
        if event.HasField("commentary") and not event.commentary.final:
            self._hidden += 1
            return
        if not self._started:
            self._started = True
            if not event.HasField("session_started"):  # joined late: the id still comes first
                self._emit(f"session {event.session_id} (from #{event.seq})")
        line = event_line(event, late=self._is_late(event))
        if self._hidden:
            line += f"  (+{self._hidden} partial update{'s' if self._hidden != 1 else ''} hidden)"
            self._hidden = 0
        self._emit(line)
        if self._progress is not None:
            self._progress.update(event)

    def _is_late(self, event: pb.Event) -> bool:
        if not event.HasField("media_time"):
            return False
        if self._clock is not None and event.media_time < self._clock:
            return True
        self._clock = event.media_time
        return False

    def _emit(self, line: str) -> None:
        if self._progress is not None:
            self._progress.clear()
        print(line, file=self._out or sys.stdout, flush=True)


class _Bar(tqdm):  # type: ignore[misc]  # tqdm ships no type hints
    """tqdm without its monitor thread: we redraw on every event (``refresh``), so nothing is
    left for the monitor to catch up on, and a CLI run starts no thread of its own."""

    monitor_interval = 0


def _bar(stream: TextIO, **kwargs: Any) -> _Bar:
    """A bar on ``stream`` that fits the terminal's width as it changes (tqdm trims a longer
    line: a wrapped line could not be redrawn in place) and is erased when closed.

    A terminal that reports no size (a pty nobody sized: ``script``, some CI runners) would make
    tqdm draw nothing at all (it reads 0 columns and -1 rows there): 80x24 then.
    """
    sized: dict[str, Any] = {}
    if _columns(stream):
        sized["dynamic_ncols"] = True
    elif stream.isatty():
        sized.update(ncols=80, nrows=24)
    return _Bar(file=stream, leave=False, mininterval=0, **sized, **kwargs)


def _columns(stream: TextIO) -> int:
    """The terminal's width (TIOCGWINSZ), 0 when unknown or not a terminal."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):  # io.UnsupportedOperation (a StringIO) is both
        return 0


class Progress:
    """A file replay's progress bar with ETA (tqdm), redrawn in place on stderr.

    Progress is the newest media time seen in the events over ``duration``
    seconds of media; the ETA extrapolates the average rate so far (``smoothing=0``:
    the replay's pace is steady, a moving average would only jitter). Erased at the
    end: the closing ``session_ended`` line says the totals.
    """

    FORMAT = "{percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s  ETA {remaining}"

    def __init__(self, duration: float, stream: TextIO) -> None:
        self.duration = duration
        self._bar = _bar(stream, total=duration, unit="s", smoothing=0, bar_format=self.FORMAT)

    @property
    def done(self) -> float:
        """Seconds of media done (the newest media time seen, at most ``duration``)."""
        return float(self._bar.n)

    def update(self, event: pb.Event) -> None:
        if event.HasField("media_time"):
            reached = min(self.duration, max(self.done, event.media_time))
            self._bar.update(reached - self.done)
        if event.HasField("session_ended"):
            self._bar.close()
            return
        self._bar.refresh()  # drawn again after every printed line (the Printer cleared it)

    def clear(self) -> None:
        self._bar.clear()


class StatusLine:
    """A camera's live status on one line of stderr (a tqdm bar that is all description),
    redrawn in place, cleared before every printed line and erased at the end.

    ``running  fps in/out 9.8/1.0  sent 42  dropped 3  last event 4 s ago  $0.0123``:
    the state is the source's (Stats.source_state: connected, reconnecting, ...),
    the rates are the Stats counters' change over wall time between two Stats
    events, the age counts from the last event that was not Stats.
    """

    def __init__(self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state = "starting"
        self._stats = pb.Stats()
        self._sample: tuple[float, int, int] | None = None  # (wall, frames_in, frames_sent) at the last Stats
        self._fps = (0.0, 0.0)
        self._last_event: float | None = None
        self._bar = _bar(stream, bar_format="{desc}")

    def update(self, event: pb.Event) -> None:
        now = self._clock()
        if event.HasField("session_ended"):
            self._bar.close()
            return
        if event.HasField("stats"):
            self._take_stats(event.stats, now)
        else:
            self._last_event = now
            if event.HasField("session_started"):
                self._state = "running"
        self._bar.set_description_str(self.line(now), refresh=True)

    def _take_stats(self, stats: pb.Stats, now: float) -> None:
        if self._sample is not None and now > self._sample[0]:
            wall, frames_in, frames_sent = self._sample
            self._fps = ((stats.frames_in - frames_in) / (now - wall), (stats.frames_sent - frames_sent) / (now - wall))
        self._sample = (now, stats.frames_in, stats.frames_sent)
        self._stats = stats
        self._state = stats.source_state or self._state

    def line(self, now: float) -> str:
        s = self._stats
        age = "-" if self._last_event is None else f"{now - self._last_event:.0f} s ago"
        return (f"{self._state}  fps in/out {self._fps[0]:.1f}/{self._fps[1]:.1f}  sent {s.frames_sent}  "
                f"dropped {s.frames_dropped}  last event {age}  ${s.estimated_cost_usd:.4f}")

    def clear(self) -> None:
        self._bar.clear()


def status_line_for() -> StatusLine | None:
    """A status line for watching or following a camera, when stdout and stderr are both a
    terminal (never in a pipe or a log file)."""
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        return None
    return StatusLine(sys.stderr)


def progress_for(source: str, *, loop: bool = False) -> Progress | None:
    """A progress bar for replaying the file ``source``, when stdout and stderr are both a terminal.

    None for a pipe or a log file (no control characters there), for camera
    URLs and ``--loop`` (no end to count down to) and when the container does
    not say its duration (or cannot be read: the replay itself reports why).
    """
    if loop or "://" in source or not (sys.stdout.isatty() and sys.stderr.isatty()):
        return None
    import av

    from ..client import file_duration

    path = Path(source)
    try:
        duration = file_duration(path) if path.is_file() else 0.0
    except (av.error.FFmpegError, OSError):  # no bar; the replay itself says what is wrong
        return None
    return Progress(duration, sys.stderr) if duration > 0 else None


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
    """The closing line. ``totals.events`` is the last seq before this event (the totals are
    taken before it is logged); the line counts ``session_ended`` too, so the number is its own
    ``#seq``, whatever the readable view hid (partials) or a resumed view skipped."""
    s = p.totals
    line = (f"{p.reason}: {s.media_seconds:.1f}s of media, {s.frames_sent} frames sent, "
            f"{s.frames_dropped} dropped, {s.events + 1} events")
    if s.usage:  # a model backend billed tokens (vision_stream.usage / .pricing)
        line += f", {sum(s.usage.values()):,} tokens, est. ${s.estimated_cost_usd:.4f}"
        if s.media_seconds > 0:
            line += f" (${s.estimated_cost_usd * 3600 / s.media_seconds:.2f}/media-hour)"
    return line


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
    "alert": lambda p: _alert(p),
}


def _alert(p: Any) -> str:
    """Alerts stand out: ``ALERT door-person (0.82): a person in the left half ... frames 12,13``."""
    head = "ALERT" if p.state != pb.Alert.STATE_RESOLVED else "resolved"
    frames = f" frames {','.join(str(i) for i in p.frame_ids)}" if p.frame_ids else ""
    checked = ""
    if p.verification.requested:
        checked = f" [verified by {p.verification.backend or '?'}]" if p.verification.confirmed else " [unverified]"
    return f"{head} {p.condition_id} ({p.confidence:.2f}): {p.evidence or p.condition}{frames}{checked}"


def event_line(event: pb.Event, *, late: bool = False) -> str:
    """A compact human-readable line for one event: time, seq, kind, then the payload's text.

    ``late``: the time column says ``late`` instead of a stamp earlier than one already printed.
    """
    t = _LATE if late and event.HasField("media_time") else (
        f"{event.media_time:7.1f}s" if event.HasField("media_time") else _NO_TIME)
    kind = event.WhichOneof("payload") or "?"
    head = f"[{t}] #{event.seq:<4} {kind:<15}"
    text = _PAYLOADS.get(kind)
    if text is None:
        return head
    body = text(getattr(event, kind))
    if kind == "session_started":
        body = f"session {event.session_id}: {body}"
    return f"{head} {body}"


def print_snapshot(response: pb.SnapshotResponse, *, as_json: bool) -> None:
    """An ``AnalyzeSnapshot`` answer: one JSON line, or the text and a line per detection."""
    if as_json:
        print(json_format.MessageToJson(response, indent=None))
        return
    print(response.text)
    for d in response.detections:
        print(f"- {d.label} [{d.severity}, {d.confidence:.2f}] {d.description}")
