"""What a session counts, its media clock, and the ``stats`` events built from them.

A session's numbers come from four places: its own counters
(:class:`PipelineCounters`: the source thread counts input, the feed counts
what went to the backend), the mailbox (latest-wins drops), the sampler
(encode timings) and the backend session's typed
:class:`~vision_stream.backends.base.BackendCounters` (tokens, reconnects,
its own drops). :func:`build_stats` adds them into one
:class:`~vision_stream.events.Stats`.

Each sampled frame is counted once, as sent or as dropped (the identity
``frames_sampled == frames_sent + frames_dropped`` holds whenever nothing is
waiting in the mailbox, so always in ``session_ended``):

- ``frames_in``: video frames the source handed to the sampler, before
  sampling: decoded frames of a file or camera, received frames of a client's
  push (a file decoded in keyframe-only mode hands over its keyframes only);
- ``frames_dropped``: sampled frames that never reached the model: replaced
  in the latest-wins mailbox, or discarded by the backend (its
  ``BackendCounters.frames_dropped``: a Live frame replaced before it was
  written, a REST candidate pushed out before any request saw it);
- ``frames_sent``: the rest of what the feed handed to the backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.base import BackendCounters
from ..events import Stats
from ..media.sampler import FrameSampler
from .mailbox import Mailbox

__all__ = ["MediaClock", "PipelineCounters", "SourceHealth", "build_stats"]


@dataclass(kw_only=True, slots=True)
class PipelineCounters:
    """The session's own counts since it started (``*_in`` from the source
    thread, the rest from the feed on the event loop)."""

    frames_in: int = 0
    frames_sampled: int = 0
    frames_handed: int = 0  # given to the backend's send_frame (some it may drop: not "sent")
    audio_chunks_in: int = 0
    audio_chunks_sent: int = 0
    bad_packets: int = 0
    prompts_sent: int = 0


class MediaClock:
    """The session's current media time, kept in one place.

    ``now`` is the newest media time (seconds) handed to the backend: what
    prompts, errors and ``session_ended`` are stamped with. ``seconds`` is the
    span of media seen so far (newest minus first).
    """

    def __init__(self) -> None:
        self.first: float | None = None
        self.now = 0.0

    def note(self, media_time: float) -> None:
        """Media up to ``media_time`` (seconds) went to the backend; time never goes back."""
        if self.first is None:
            self.first = media_time
        if media_time > self.now:
            self.now = media_time

    @property
    def seconds(self) -> float:
        return 0.0 if self.first is None else max(0.0, self.now - self.first)


@dataclass(kw_only=True, slots=True)
class SourceHealth:
    """A live source's connection as ListSessions and stats show it."""

    state: str = ""  # "", connecting, streaming, reconnecting, failed
    outage_seconds: float = 0.0  # length of the last outage the source recovered from
    recoveries: int = 0  # outages the source came back from


def build_stats(*, counters: PipelineCounters, media: MediaClock, mailbox: Mailbox, sampler: FrameSampler,
                backend: BackendCounters, source: SourceHealth, events: int, elapsed: float) -> Stats:
    """One Stats event. ``elapsed``: wall seconds since the session started (0 before it did;
    up to its end once it ended, so an ended session's rates stay put);
    ``events``: the last sequence number in the session's log."""
    c = counters
    # A frame the backend dropped was handed to it first: subtract it once, so sent + dropped == sampled.
    dropped = mailbox.frames_dropped + backend.frames_dropped
    sent = max(0, c.frames_handed - backend.frames_dropped)
    p50, p99 = sampler.encode_percentile(50), sampler.encode_percentile(99)
    return Stats(
        frames_in=c.frames_in,
        frames_sampled=c.frames_sampled,
        frames_sent=sent,
        frames_dropped=dropped,
        audio_chunks_in=c.audio_chunks_in,
        audio_chunks_sent=c.audio_chunks_sent,
        audio_chunks_dropped=mailbox.audio_dropped + backend.audio_chunks_dropped,
        bad_packets=c.bad_packets,
        prompts_sent=c.prompts_sent,
        events=events,
        media_seconds=round(media.seconds, 3),
        encode_ms_p50=round(p50, 3),
        encode_ms_p99=round(p99, 3),
        prompt_tokens=backend.prompt_tokens,
        response_tokens=backend.response_tokens,
        reconnects=backend.reconnects,
        fps_in=round(c.frames_in / elapsed, 2) if elapsed else 0.0,
        fps_out=round(sent / elapsed, 2) if elapsed else 0.0,
        source_state=source.state,
        source_outage_seconds=round(source.outage_seconds, 3),
        source_recoveries=source.recoveries,
        usage=dict(backend.usage.tokens),
        estimated_cost_usd=round(backend.estimated_cost_usd, 6),
    )
