"""A camera source that survives its camera: reconnects, watchdog, continuous media time.

:class:`ReconnectingSource` wraps a *connector* (a callable that opens one
:class:`Connection` to the camera, blocking) and turns the camera's failures
into :class:`~vision_stream.media.types.SourceStatus` items instead of ending
the session:

- every way a connection ends that is not ``close()`` (the stream's normal
  end, a read timeout, a reset, a stall) is a *disconnect*, followed by a
  reconnect after a capped, jittered exponential backoff
  (the one :class:`~vision_stream.retry.RetryPolicy`, in
  :attr:`ConnectionOptions.reconnect`);
- a watchdog ends a connection whose last decoded frame is older than
  ``stall_timeout`` seconds (packets may still flow: a frozen encoder, a
  stream of undecodable data); a connection that sends nothing at all is ended
  by the transport's own read timeout;
- permanent errors (wrong credentials) and exhausted attempts end the source
  with a "failed" status;
- ``close()`` from another thread (Ctrl-C, ``StopSession``) stops it
  promptly: it interrupts the connection's blocked read
  (:meth:`Connection.interrupt`) and the backoff wait, so ``items()`` does
  not sit out a read timeout or a reconnect delay;
- media time keeps growing across reconnects: each new connection continues
  where the previous one ended plus the wall-clock outage, so the pipeline's
  commentary cadence and the backends' timelines never go backwards;
- compressed video packets (a connection with a ``packet_sink`` attribute,
  media/rtsp.py) go to the source's ``packet_sink`` (a session's evidence,
  pipeline/packet_ring.py) on that same continued clock. Each connection
  starts a new codec segment (``start_stream``: parameters may change across a
  reconnect) and its first packet is a keyframe, so a clip never needs a
  packet from before an outage.

States yielded: "connecting" (first attempt), "streaming" (first item of a
connection; ``outage_seconds`` set after an outage), "reconnecting" (with
``next_attempt_in`` seconds), "failed" (last item before the end).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import UsageError, VisionStreamError
from ..retry import Backoff, RetryPolicy
from .types import AudioChunk, BadPacket, MediaItem, SourceStatus, VideoFrame

if TYPE_CHECKING:
    from .demux import PacketSink

__all__ = ["Connection", "ConnectionOptions", "Connector", "ReconnectingSource"]

log = logging.getLogger(__name__)

TRANSPORTS = ("tcp", "udp")


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectionOptions:
    """Connection hardening for cameras (``[connection]`` and ``[reconnect]`` in cameras.toml).

    transport: RTSP lower transport, "tcp" (default: survives NAT and loss
        without smearing) or "udp".
    open_timeout: seconds an attempt may take to connect and read the stream
        headers before it counts as failed.
    read_timeout: seconds without any data after which the connection is
        declared dead (FFmpeg socket timeout and PyAV read timeout, HTTP read
        timeout). Also bounds how long ``close()`` waits on a blocked read.
    stall_timeout: watchdog: seconds without a decoded frame (audio for an
        audio-only stream) after which the connection is dropped and reopened.
    reconnect: backoff between attempts; ``stable_after`` is seconds of
        streaming after which a later drop starts from ``initial_delay`` again.
    """

    transport: str = "tcp"
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    stall_timeout: float = 10.0
    reconnect: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise UsageError(f"connection transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}")
        for name in ("open_timeout", "read_timeout", "stall_timeout"):
            value = getattr(self, name)
            if not 0.1 <= value <= 600:
                raise UsageError(f"connection {name} must be in [0.1, 600] seconds, got {value}")


class Connection(Protocol):
    """One open connection to a live source, read in the session's thread."""

    def items(self, should_stop: Callable[[], bool]) -> Iterator[MediaItem]:
        """Blocking iterator of items; media times are seconds relative to this
        connection (any origin). Ends when the stream ends or ``should_stop()``
        turns true (polled between packets/reads); raises a
        :class:`~vision_stream.errors.VisionStreamError` (``retryable`` set) when
        the connection breaks."""
        ...

    def interrupt(self) -> None:
        """Make a read blocked in ``items()`` return soon; called from another
        thread while ``items()`` may be running, so it must not free what the
        reading thread uses (``close()`` does that, in the reading thread).
        Best effort: a connection that cannot abort a read leaves it to its
        read timeout."""
        ...

    def close(self) -> None:
        """Release the connection (called from the reading thread, after items())."""
        ...


@runtime_checkable
class TakesPackets(Protocol):
    """A connection that can hand its compressed video packets on (media/rtsp.py)."""

    packet_sink: PacketSink | None


# Opens a connection (blocking, bounded by open_timeout); raises a
# VisionStreamError whose ``retryable`` says whether trying again can help.
Connector = Callable[[], Connection]


class _Stalled(Exception):
    pass


# Packets a connection demuxes before its first decoded item fixes the clock
# offset (a decoder holds back a few frames for reordering): held, then shifted.
_MAX_EARLY_PACKETS = 256


class _ShiftedPacketSink:
    """One connection's packets moved onto the session's continued media clock.

    The offset (``base``) is only known once the connection's first item is
    decoded, a few packets after the keyframe the stream starts with; the
    packets before it wait here (bounded) and follow in demux order."""

    def __init__(self, sink: PacketSink, base: Callable[[], float | None]) -> None:
        self._sink = sink
        self._base = base
        self._early: list[tuple[bytes, float, float, float, bool]] = []

    def start_stream(self, stream: object) -> None:
        self._sink.start_stream(stream)

    def add(self, data: bytes, *, pts: float, dts: float, duration: float, keyframe: bool) -> None:
        base = self._base()
        if base is None:
            if len(self._early) < _MAX_EARLY_PACKETS:
                self._early.append((data, pts, dts, duration, keyframe))
            return
        if self._early:
            early, self._early = self._early, []
            for d, p, t, dur, key in early:
                self._sink.add(d, pts=p + base, dts=t + base, duration=dur, keyframe=key)
        self._sink.add(data, pts=pts + base, dts=dts + base, duration=duration, keyframe=keyframe)


class ReconnectingSource:
    """A live MediaSource over a reconnecting connector (see module docstring).

    ``description`` must already be redacted (no credentials). ``clock`` is
    injectable for tests; it must be monotonic (seconds).
    """

    live = True

    def __init__(
        self,
        *,
        description: str,
        connect: Connector,
        options: ConnectionOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description
        self.options = options
        self._connect = connect
        self._clock = clock
        self._stop = threading.Event()
        # The connection being read, for close() to interrupt from another thread.
        self._lock = threading.Lock()
        self._current: Connection | None = None
        self._backoff = Backoff(options.reconnect)
        # Media-time continuity across connections.
        self._last_time: float | None = None  # largest media time emitted, seconds
        self._last_item_at = 0.0  # clock() when it was emitted
        self._last_video_t: float | None = None
        self._last_audio_end: float | None = None
        # Watchdog: clock() of the last decoded frame of the current connection.
        self._last_frame_at = 0.0
        self._has_video = False
        # The current connection's clock offset, None until its first item (packets wait).
        self._base: float | None = None
        # Where compressed video packets go (a session's evidence); set before items().
        self.packet_sink: PacketSink | None = None
        # Counters (read by tests and stats).
        self.connects = 0
        self.disconnects = 0
        self.stalls = 0

    # ----------------------------------------------------------------- control

    def close(self) -> None:
        """Stop producing; safe from any thread. ``items()`` ends promptly: the
        current connection's blocked read is interrupted (MJPEG at once; an
        FFmpeg or OpenCV read, which cannot be aborted, within ``read_timeout``
        seconds), as is a backoff wait. An attempt still connecting ends
        within ``open_timeout`` seconds."""
        self._stop.set()
        with self._lock:
            connection = self._current
        if connection is not None:
            connection.interrupt()

    def __repr__(self) -> str:
        return f"ReconnectingSource({self.description!r})"

    # ------------------------------------------------------------------ items

    def items(self) -> Iterator[MediaItem]:
        """Blocking iterator: media items interleaved with SourceStatus changes."""
        outage_since: float | None = None
        yield SourceStatus("connecting", message=f"connecting to {self.description}")
        while not self._stop.is_set():
            streamed_at: float | None = None
            failure: tuple[str, bool]
            try:
                connection = self._connect()
            except VisionStreamError as exc:
                failure = (exc.message, exc.retryable)
            else:
                self.connects += 1
                self._hold(connection)
                self._base = None
                if self.packet_sink is not None and isinstance(connection, TakesPackets):
                    connection.packet_sink = _ShiftedPacketSink(self.packet_sink, lambda: self._base)
                try:
                    for item in self._guarded(connection):
                        if streamed_at is None:
                            streamed_at = self._clock()
                            yield self._streaming_status(outage_since, streamed_at)
                            outage_since = None
                        yield item
                    failure = ("the stream ended (the camera closed the connection)", True)
                except _Stalled:
                    self.stalls += 1
                    failure = (f"stalled: no frame for {self.options.stall_timeout:.1f} s", True)
                except VisionStreamError as exc:
                    failure = (exc.message, exc.retryable)
                finally:
                    self._hold(None)
                    connection.close()
            if self._stop.is_set():
                return
            now = self._clock()
            if streamed_at is not None:
                self.disconnects += 1
                if now - streamed_at >= self.options.reconnect.stable_after:
                    self._backoff.reset()
            if outage_since is None:
                outage_since = now if streamed_at is None or self._last_time is None else self._last_item_at
            message, retryable = failure
            if self.description not in message:
                message = f"{self.description}: {message}"
            delay = self._backoff.fail() if retryable else None
            outage = max(0.0, now - outage_since)
            if delay is None:
                n = self._backoff.failures
                why = "" if not retryable else f" (gave up after {n} attempt{'' if n == 1 else 's'})"
                yield SourceStatus("failed", message=f"{message}{why}", retryable=False,
                                   outage_seconds=outage)
                return
            log.info("%s; reconnecting in %.1f s", message, delay)
            yield SourceStatus(
                "reconnecting",
                message=f"{message}; retrying in {delay:.1f} s "
                f"(attempt {self._backoff.failures + 1}, down for {outage:.1f} s)",
                retryable=True,
                outage_seconds=outage,
                next_attempt_in=delay,
            )
            if self._stop.wait(delay):
                return

    def _hold(self, connection: Connection | None) -> None:
        """Make ``connection`` the one ``close()`` interrupts; if ``close()``
        came while it was opening, interrupt it now (the read would block)."""
        with self._lock:
            self._current = connection
        if connection is not None and self._stop.is_set():
            connection.interrupt()

    def _streaming_status(self, outage_since: float | None, now: float) -> SourceStatus:
        if outage_since is None:
            return SourceStatus("streaming", message=f"streaming from {self.description}")
        outage = max(0.0, now - outage_since)
        return SourceStatus("streaming", message=f"{self.description} is back after {outage:.1f} s",
                            outage_seconds=outage)

    def _should_stop(self) -> bool:
        if self._stop.is_set():
            return True
        return self._clock() - self._last_frame_at > self.options.stall_timeout

    def _guarded(self, connection: Connection) -> Iterator[MediaItem]:
        """The connection's items with the watchdog applied and media time continued."""
        self._last_frame_at = self._clock()  # the watchdog counts from the open
        base: float | None = None
        for item in connection.items(self._should_stop):
            now = self._clock()
            if isinstance(item, VideoFrame):
                self._has_video = True
                self._last_frame_at = now
            elif isinstance(item, AudioChunk) and not self._has_video:
                self._last_frame_at = now
            t = item.media_time if isinstance(item, VideoFrame | AudioChunk | BadPacket) else None
            if t is not None and base is None:
                base = self._base = self._base_for(t, now)
            if self._stop.is_set():
                return
            yield self._shifted(item, base or 0.0, now)
        if not self._stop.is_set() and self._clock() - self._last_frame_at > self.options.stall_timeout:
            raise _Stalled

    def _base_for(self, first_t: float, now: float) -> float:
        """Offset that puts a new connection's first item after everything emitted,
        separated by the wall-clock outage (seconds)."""
        if self._last_time is None:
            return -first_t  # the session's media time starts at 0
        gap = max(0.0, now - self._last_item_at)
        return self._last_time + gap - first_t

    def _shifted(self, item: MediaItem, base: float, now: float) -> MediaItem:
        if isinstance(item, VideoFrame):
            t = item.media_time + base
            if self._last_video_t is not None and t < self._last_video_t:
                t = self._last_video_t  # never backwards (RTCP resync, reordered first packets)
            item.media_time = t
            self._last_video_t = t
            self._note(t, now)
        elif isinstance(item, AudioChunk):
            t = item.media_time + base
            if self._last_audio_end is not None and t < self._last_audio_end:
                t = self._last_audio_end
            item = dataclasses.replace(item, media_time=t)
            self._last_audio_end = t + item.duration
            self._note(t, now)
        elif isinstance(item, BadPacket) and item.media_time is not None:
            item = dataclasses.replace(item, media_time=item.media_time + base)
        return item

    def _note(self, t: float, now: float) -> None:
        if self._last_time is None or t > self._last_time:
            self._last_time = t
        self._last_item_at = now
