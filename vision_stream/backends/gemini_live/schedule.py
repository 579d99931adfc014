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
  asked again first (``retry``);
- while a BLOCKING tool call awaits our answer, audio is held in its bounded
  window (streaming it draws close 1008) and goes after the answer;
- an answer to a call whose connection died waits for the server to re-issue
  the call (same id) on the next connection; not re-issued within
  ``reissue_wait`` seconds, the call is reported (``expire_orphans``);
- a quiet connection gets a keepalive (``keepalive_interval``, below).

Before a goAway rotation closes the old connection, :meth:`SendSchedule.next_owed`
gives what is owed on it (tool answers, audio) so the driver writes it first.

Rotation (:meth:`SendSchedule.rotation_due`): after ``goAway``, at the next
turn boundary, and at the latest ``go_away_margin`` seconds before the
announced deadline. Stall (:meth:`SendSchedule.stalled`): a turn we wait for
and no server frame for ``response_timeout`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...conditions.live import REPORT_CONDITION
from ...events import ErrorEvent
from ...media.types import AudioChunk
from ...metrics import observe_frame_to_wire
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

TURN_FRAME_IDS = 32  # frame ids a turn names at most (the newest of those written since the last prompt)


@dataclass(frozen=True, slots=True)
class _InFlight:
    """The message handed to the driver and not yet confirmed written."""

    kind: str  # "tool_response", "audio", "video", "audio_stream_end", "prompt", "keepalive"
    frame: PendingFrame | None = None
    chunk: AudioChunk | None = None
    answer: tuple[str, str, dict[str, object]] | None = None  # a tool response: id, name, response


class SendSchedule:
    """Send decisions of one logical Live session (see the module docstring).

    max_fps: frames written per second of wall time, at most.
    go_away_margin: seconds before a ``goAway`` deadline at which we rotate even mid-turn.
    response_timeout: server silence, seconds, after which a turn we wait for counts as stalled.
    client_functions: functions the client declared (it answers those; others we answer).
    lossless: frames queue instead of replacing each other (``Outbox``); the session then
        waits for room, so the wall-clock ``max_fps`` cap paces a ``--fast`` replay, and the
        prompts, decided on media time by the pipeline, wait instead of coalescing.
    reissue_wait: seconds after a reconnect within which the server may re-issue the
        calls lost with the old connection; later they are reported lost.
    keepalive_interval: seconds without a client message after which a quiet
        connection gets ``realtimeInput.audioStreamEnd`` (0: never). Middleboxes reap
        WebSocket connections that look idle (about 126 s, close 1006; LIVE_API.md
        "Limits"), and a WebSocket ping is a control frame some proxies do not count as
        traffic; ``audioStreamEnd`` is a data message every Live model accepts at any
        time that carries no content: it starts no turn and costs no tokens. Sent only
        while no audio waits, so it never cuts an utterance.
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
        lossless: bool = False,
        reissue_wait: float = 2.0,
        keepalive_interval: float = 0.0,
    ) -> None:
        self.protocol = protocol
        self._reissue_wait = reissue_wait
        self._keepalive_interval = keepalive_interval
        self._orphans_due: float | None = None  # when lost calls not re-issued are reported
        self._last_sent_at = 0.0  # per connection: the last client message written
        self.outbox = Outbox(audio_chunks=audio_chunks, lossless=lossless)
        self._frame_interval = 1.0 / max_fps
        self._go_away_margin = go_away_margin
        self._response_timeout = response_timeout
        self._client_functions = frozenset(client_functions) - {REPORT_EVENT, REPORT_CONDITION}
        # Evidence ids (pipeline frame ring) of the frames written since the last prompt, and of
        # those the current turn is about: what commentary and report_condition verdicts name.
        self._frame_ids: list[int] = []
        self.turn_frame_ids: tuple[int, ...] = ()
        self._in_flight: _InFlight | None = None
        self._next_frame_at = 0.0
        self._go_away_deadline: float | None = None  # per connection
        self._go_away_close_at: float | None = None  # per connection: when the server closes it
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
        self._go_away_close_at = None
        self._last_server_at = self._last_sent_at = now
        if self.protocol.orphaned_calls:
            self._orphans_due = now + self._reissue_wait

    def connection_lost(self, *, abnormal: bool = False) -> tuple[ProtocolEvent, ...]:
        """The connection ended: put back what was not written, end the cut turn.

        Returns the protocol's events closing the cut turn; its unanswered
        prompt waits to be asked again first.
        """
        flight, self._in_flight = self._in_flight, None
        if flight is not None and flight.frame is not None:
            self.outbox.put_back(flight.frame)  # for the next connection (newest wins: unless a newer one came)
        loss = self.protocol.connection_lost(abnormal=abnormal)  # abnormal: an error close or a drop
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
                if event.reissued and any(r[0] == call.id for r in self.outbox.tool_responses):
                    continue  # its answer still waits: it goes now, once
                earlier = self.protocol.earlier_answer(call.id) if event.reissued else None
                if earlier is not None:  # written on a connection that died unread: again
                    self.outbox.put_tool_response(call.id, call.name, earlier)
                elif call.name in (REPORT_EVENT, REPORT_CONDITION):
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
                self._go_away_close_at = now + max(0.0, left)
        return events

    # ---- what to send ------------------------------------------------------------------

    def next_outgoing(self, now: float) -> str | None:
        """The text of the most urgent message that may go at ``now``; None when nothing may.

        The driver writes it, then calls :meth:`sent` (or, when the write
        failed, :meth:`connection_lost`). One message at a time.
        """
        outbox, protocol = self.outbox, self.protocol
        owed = self.next_owed()
        if owed is not None:
            return owed
        pending = outbox.frame
        if pending is not None and now >= self._next_frame_at:
            outbox.take_frame()
            # Rate cap (LIVE_API.md "Media": about 1 frame a second): never above max_fps.
            self._next_frame_at = now + self._frame_interval
            self._in_flight = _InFlight("video", frame=pending)
            return protocol.send_video(pending.frame.jpeg)
        if outbox.audio_stream_end and not protocol.blocking_call_pending:  # after the held audio
            self._in_flight = _InFlight("audio_stream_end")
            return protocol.send_audio_stream_end()
        if protocol.state is ConnectionState.ACTIVE and not protocol.turn_in_progress and outbox.prompts.pending:
            prompt = outbox.take_prompt()
            assert prompt is not None
            self.turn_media_time = prompt.media_time if prompt.media_time is not None else self._last_media_time
            if self._frame_ids:  # none new: the turn is about the frames the model already has
                self.turn_frame_ids, self._frame_ids = tuple(self._frame_ids), []
            self._last_server_at = now  # the answer is due from now
            self._in_flight = _InFlight("prompt")
            return protocol.send_prompt(prompt.text)
        if self._keepalive_due(now):
            self._in_flight = _InFlight("keepalive")
            return protocol.send_audio_stream_end()
        return None

    def next_owed(self) -> str | None:
        """The next tool answer or audio chunk: what the old connection
        still writes before a goAway rotation closes it. None when nothing is owed.

        Answers waiting for a re-issued call stay queued; audio waits while a
        BLOCKING call is pending.
        """
        outbox, protocol = self.outbox, self.protocol
        answers = outbox.tool_responses
        for answer in list(answers):
            if protocol.awaits_reissue(answer[0]):
                continue
            answers.remove(answer)
            text = protocol.send_tool_response(*answer)
            if text is not None:  # None: unknown or cancelled meanwhile
                self._in_flight = _InFlight("tool_response", answer=answer)
                return text
        if protocol.blocking_call_pending:
            return None
        if outbox.audio:
            chunk = outbox.audio[0]
            self._in_flight = _InFlight("audio", chunk=chunk)
            return protocol.send_audio(chunk.pcm, rate=chunk.sample_rate)
        return None

    def unsent(self) -> None:
        """The message from :meth:`next_outgoing` was not written (the connection closed
        first): a tool answer goes back to the front of its queue, still owed."""
        flight, self._in_flight = self._in_flight, None
        if flight is not None and flight.answer is not None:
            call_id, name, _ = flight.answer
            self.protocol.tool_response_unsent(call_id, name)
            self.outbox.tool_responses.appendleft(flight.answer)
        elif flight is not None:
            self._in_flight = flight  # connection_lost puts a frame back

    def expire_orphans(self, now: float) -> list[ErrorEvent]:
        """Calls lost with the last connection and not re-issued within ``reissue_wait``
        after the reconnect: their error events; their waiting answers are dropped."""
        if self._orphans_due is None or now < self._orphans_due:
            return []
        self._orphans_due = None
        lost = set(self.protocol.orphaned_calls)
        kept = [r for r in self.outbox.tool_responses if r[0] not in lost]
        self.outbox.tool_responses.clear()
        self.outbox.tool_responses.extend(kept)
        return self.protocol.expire_orphaned_calls()

    def _keepalive_due(self, now: float) -> bool:
        return (self._keepalive_interval > 0 and not self.outbox.audio
                and now - self._last_sent_at >= self._keepalive_interval)

    def drain_deadline(self, now: float, limit: float) -> float:
        """Seconds the old connection may still write after a goAway: at most ``limit``,
        and never past the server's announced close (a tiny floor: the answers are small)."""
        close_at = self._go_away_close_at if self._go_away_close_at is not None else now
        return max(0.05, min(limit, close_at - now))

    def sent(self, now: float) -> float | None:
        """The message from :meth:`next_outgoing` was written at ``now``; for a video
        frame, returns how long it waited since it was handed over (seconds)."""
        flight, self._in_flight = self._in_flight, None
        self._last_sent_at = now
        if flight is None:
            return None
        if flight.kind == "audio":
            self.outbox.take_audio(flight.chunk)  # unless the window already dropped it meanwhile
            self.audio_chunks_sent += 1
        elif flight.kind == "audio_stream_end":
            self.outbox.audio_stream_end = False
        elif flight.kind == "prompt":
            self.prompts_sent += 1
        elif flight.frame is not None:
            self.frames_sent += 1
            self._last_media_time = flight.frame.frame.media_time
            if flight.frame.frame.frame_id:
                self._frame_ids = [*self._frame_ids[-(TURN_FRAME_IDS - 1):], flight.frame.frame.frame_id]
            if flight.frame.frame.decoded_at:  # monotonic, like ``now``: decode -> the socket write returned
                observe_frame_to_wire(now - flight.frame.frame.decoded_at)
            return now - flight.frame.queued_at
        return None

    def wait_hint(self, now: float) -> float | None:
        """Seconds until :meth:`next_outgoing` may have something without new input
        (a rate-capped frame); None: only new input or a server frame can change that."""
        hints = []
        if self.outbox.frame is not None:
            hints.append(max(0.0, self._next_frame_at - now))
        if self._keepalive_interval > 0:
            hints.append(max(0.0, self._last_sent_at + self._keepalive_interval - now))
        return min(hints) if hints else None

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
