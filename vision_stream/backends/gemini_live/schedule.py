"""What to send next, and when to rotate: the send side of the sans-I/O core.

:class:`SendSchedule` holds the :class:`~.outbox.Outbox` and decides, from
the :class:`~.protocol.LiveProtocol` state and a time the driver passes in
(``time.monotonic()`` seconds; tests pass plain numbers), which client message
goes out next and when the connection must end. It owns no socket, no task
and no clock, in the style of websockets' ``data_to_send()`` and
``close_expected()``: the driver asks, writes, and reports back.

Send order (one message per :meth:`SendSchedule.next_outgoing` call)::

    tool responses > audio > video (at most max_fps) > audioStreamEnd > prompt

- audio leaves the buffer only once written (:meth:`SendSchedule.sent`): a
  connection lost mid-write keeps it for the next connection;
- a frame lost mid-write goes back to the slot unless a newer one arrived;
- a prompt goes only while the connection is ACTIVE (not draining after
  ``goAway``) and no turn is in progress; one cut by a lost connection is
  asked again first (``retry``).

Rotation (:meth:`SendSchedule.rotation_due`): after ``goAway``, at the next
turn boundary, and at the latest ``go_away_margin`` seconds before the
announced deadline. Stall (:meth:`SendSchedule.stalled`): a turn we wait for
and no server frame for ``response_timeout`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...media.types import AudioChunk
from .outbox import Outbox, PendingFrame, PendingPrompt
from .protocol import (
    REPORT_EVENT,
    ConnectionState,
    GoAwayReceived,
    LiveProtocol,
    ProtocolEvent,
    ToolCallRequested,
    ToolCallsCancelled,
)


@dataclass(frozen=True, slots=True)
class _InFlight:
    """The message handed to the driver and not yet confirmed written."""

    kind: str  # "tool_response", "audio", "video", "audio_stream_end", "prompt"
    frame: PendingFrame | None = None
    chunk: AudioChunk | None = None


class SendSchedule:
    """Send decisions of one logical Live session (see the module docstring).

    max_fps: frames written per second of wall time, at most.
    go_away_margin: seconds before a ``goAway`` deadline at which we rotate even mid-turn.
    response_timeout: server silence, seconds, after which a turn we wait for counts as stalled.
    client_functions: functions the client declared (it answers those; others we answer).
    """

    def __init__(
        self,
        protocol: LiveProtocol,
        *,
        audio_chunks: int,
        max_fps: float,
        go_away_margin: float,
        response_timeout: float,
        client_functions: Iterable[str] = (),
    ) -> None:
        self.protocol = protocol
        self.outbox = Outbox(audio_chunks=audio_chunks)
        self._frame_interval = 1.0 / max_fps
        self._go_away_margin = go_away_margin
        self._response_timeout = response_timeout
        self._client_functions = frozenset(client_functions) - {REPORT_EVENT}
        self._in_flight: _InFlight | None = None
        self._next_frame_at = 0.0
        self._go_away_deadline: float | None = None  # per connection
        self._last_server_at = 0.0  # per connection: the last server frame, or a prompt sent
        self._last_media_time: float | None = None  # of the last frame written
        self.turn_media_time: float | None = None  # what the current turn refers to
        self.frames_sent = 0
        self.audio_chunks_sent = 0
        self.prompts_sent = 0

    # ---- connection lifecycle ----------------------------------------------------------

    def connected(self, now: float) -> None:
        """A connection reached ``setupComplete``: a fresh goAway state and stall clock."""
        self._go_away_deadline = None
        self._last_server_at = now

    def connection_lost(self) -> tuple[ProtocolEvent, ...]:
        """The connection ended: put back what was not written, end the cut turn.

        Returns the protocol's events closing the cut turn; its unanswered
        prompt waits to be asked again first.
        """
        flight, self._in_flight = self._in_flight, None
        if flight is not None and flight.frame is not None and self.outbox.frame is None:
            self.outbox.frame = flight.frame  # still the newest: keep it for the next connection
        loss = self.protocol.connection_lost()
        if loss.unanswered_prompt is not None:
            self.outbox.prompts.retry(PendingPrompt(loss.unanswered_prompt, "retry", self.turn_media_time))
        return loss.events

    # ---- server frames -----------------------------------------------------------------

    def receive(self, frame: str | bytes, now: float) -> list[ProtocolEvent]:
        """Feed one server frame (received at ``now``); returns the protocol events.

        Tool calls are answered here when the answer is ours (``report_event``:
        at once; a function nobody declared: an error), cancellations purge the
        answers not yet written, ``goAway`` starts the rotation clock.
        """
        self._last_server_at = now
        events = self.protocol.receive(frame)
        for event in events:
            if isinstance(event, ToolCallRequested):
                call = event.call
                if call.name == REPORT_EVENT:
                    self.outbox.put_tool_response(call.id, call.name, {"result": "ok"})
                elif call.name not in self._client_functions:
                    self.outbox.put_tool_response(call.id, call.name, {"error": f"unknown function {call.name}"})
            elif isinstance(event, ToolCallsCancelled):
                cancelled = set(event.ids)
                kept = [r for r in self.outbox.tool_responses if r[0] not in cancelled]
                self.outbox.tool_responses.clear()
                self.outbox.tool_responses.extend(kept)
            elif isinstance(event, GoAwayReceived):
                left = event.time_left if event.time_left is not None else 0.0
                self._go_away_deadline = now + max(0.0, left - self._go_away_margin)
        return events

    # ---- what to send ------------------------------------------------------------------

    def next_outgoing(self, now: float) -> str | None:
        """The text of the most urgent message that may go at ``now``; None when nothing may.

        The driver writes it, then calls :meth:`sent` (or, when the write
        failed, :meth:`connection_lost`). One message at a time.
        """
        outbox, protocol = self.outbox, self.protocol
        while outbox.tool_responses:
            call_id, name, response = outbox.tool_responses.popleft()
            text = protocol.send_tool_response(call_id, name, response)
            if text is not None:  # None: unknown or cancelled meanwhile
                self._in_flight = _InFlight("tool_response")
                return text
        if outbox.audio:
            chunk = outbox.audio[0]
            self._in_flight = _InFlight("audio", chunk=chunk)
            return protocol.send_audio(chunk.pcm, rate=chunk.sample_rate)
        pending = outbox.frame
        if pending is not None and now >= self._next_frame_at:
            outbox.frame = None
            # Rate cap (LIVE_API.md "Media": about 1 frame a second): never above max_fps.
            self._next_frame_at = now + self._frame_interval
            self._in_flight = _InFlight("video", frame=pending)
            return protocol.send_video(pending.frame.jpeg)
        if outbox.audio_stream_end:
            self._in_flight = _InFlight("audio_stream_end")
            return protocol.send_audio_stream_end()
        if protocol.state is ConnectionState.ACTIVE and not protocol.turn_in_progress and outbox.prompts.pending:
            prompt = outbox.prompts.pop()
            assert prompt is not None
            self.turn_media_time = prompt.media_time if prompt.media_time is not None else self._last_media_time
            self._last_server_at = now  # the answer is due from now
            self._in_flight = _InFlight("prompt")
            return protocol.send_prompt(prompt.text)
        return None

    def sent(self, now: float) -> float | None:
        """The message from :meth:`next_outgoing` was written at ``now``; for a video
        frame, returns how long it waited since it was handed over (seconds)."""
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return None
        if flight.kind == "audio":
            if self.outbox.audio and self.outbox.audio[0] is flight.chunk:
                self.outbox.audio.popleft()  # unless the window already dropped it meanwhile
            self.audio_chunks_sent += 1
        elif flight.kind == "audio_stream_end":
            self.outbox.audio_stream_end = False
        elif flight.kind == "prompt":
            self.prompts_sent += 1
        elif flight.frame is not None:
            self.frames_sent += 1
            self._last_media_time = flight.frame.frame.media_time
            return now - flight.frame.queued_at
        return None

    def wait_hint(self, now: float) -> float | None:
        """Seconds until :meth:`next_outgoing` may have something without new input
        (a rate-capped frame); None: only new input or a server frame can change that."""
        if self.outbox.frame is None:
            return None
        return max(0.0, self._next_frame_at - now)

    @property
    def drained(self) -> bool:
        """Nothing left to send and no turn to wait for (a closing session may end)."""
        return self.outbox.empty and not self.protocol.turn_in_progress

    # ---- when the connection must end --------------------------------------------------

    @property
    def go_away_seen(self) -> bool:
        """The server announced the end of the current connection."""
        return self._go_away_deadline is not None

    def rotation_due(self, now: float) -> bool:
        """After ``goAway``: True at the next turn boundary, or once the deadline (minus margin) passed."""
        deadline = self._go_away_deadline
        if deadline is None:
            return False
        return not self.protocol.turn_in_progress or now >= deadline

    def stalled(self, now: float) -> bool:
        """A turn we wait for (not one waiting on a client's tool answer) and no server frame for too long."""
        protocol = self.protocol
        waiting = protocol.turn_in_progress and not protocol.pending_tool_calls
        return waiting and now - self._last_server_at > self._response_timeout
