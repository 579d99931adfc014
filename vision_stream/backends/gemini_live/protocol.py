"""The Live session as a sans-I/O state machine.

One :class:`LiveProtocol` is one *logical* session: it survives any number of
WebSocket connections. Feed it server frames with :meth:`receive`, tell it about
connection changes, ask it for the text of client messages; it answers with
:data:`ProtocolEvent` values. No sockets, no awaits, no clocks (``goAway`` is
reported as seconds left; what to send next and when to rotate is
``schedule.py``'s, which takes the time as a parameter).

States (per connection, plus the end)::

    DISCONNECTED --start_connection()--> SETUP_SENT --setupComplete--> ACTIVE
         ^                                    |                         |
         |                                    |                      goAway
         +-------- connection_lost() ---------+------------------- DRAINING
    any --close()--> CLOSED

Media and prompts may be sent in ACTIVE and DRAINING (the connection still
works until the server closes it); sending in another state raises
:class:`~vision_stream.errors.LiveStateError`, it never silently does nothing.
"""

from __future__ import annotations

import enum
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...conditions.live import REPORT_CONDITION
from ...errors import LiveStateError
from ...events import AudioOut, Commentary, Detection, ErrorEvent, Transcript
from ...usage import Usage
from . import builders
from .messages import FunctionCall, ServerContent, ServerMessage, parse_server_message
from .models import ModelCapabilities

BACKEND_NAME = "live"
REPORT_EVENT = "report_event"
SEVERITIES = ("info", "low", "medium", "high")
# ``turnCompleteReason`` values that are no failure: the model just wants more input.
QUIET_TURN_REASONS = frozenset({"", "TURN_COMPLETE_REASON_UNSPECIFIED", "NEED_MORE_INPUT"})
# How answers to NON_BLOCKING calls enter the model (``functionResponses[].scheduling``):
# report_event's "ok" goes into the context only (no new turn, nothing said about
# it); a client's own function result is spoken about once the model is idle.
SILENT = "SILENT"
WHEN_IDLE = "WHEN_IDLE"
# Answers given in one logical session, kept by call id so a call re-sent on the same
# connection is not answered twice, and one the server re-issues on a later connection
# (it never read our answer) gets the same answer again (oldest forgotten beyond this).
ANSWERED_IDS_KEPT = 1024


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    SETUP_SENT = "setup_sent"
    ACTIVE = "active"
    DRAINING = "draining"
    CLOSED = "closed"


# ---- events the protocol hands to the driver --------------------------------------


@dataclass(frozen=True, slots=True)
class SetupCompleted:
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallRequested:
    """The model called a function; answer it (``report_event``: at once) unless cancelled.

    ``reissued``: the server called it again (same id) on a new connection after the
    one it was first called on died unanswered; its Detection was reported already.
    """

    call: FunctionCall
    detection: Detection
    reissued: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallsCancelled:
    ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The server will close this connection in ``time_left`` seconds (None: unknown)."""

    time_left: float | None


@dataclass(frozen=True, slots=True)
class HandleUpdated:
    handle: str


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """A model turn ended; ``interrupted`` when cut (server ``interrupted`` or connection loss)."""

    turn_id: str
    interrupted: bool = False
    prompted: bool = False


@dataclass(frozen=True, slots=True)
class UsageReported:
    prompt_tokens: int
    response_tokens: int
    total_tokens: int


# Payloads for the session's event stream (Commentary, Transcript, AudioOut,
# ErrorEvent for a turn the model ended in failure) come as they are, beside
# the control events.
ProtocolEvent = (
    Commentary
    | Transcript
    | AudioOut
    | ErrorEvent
    | SetupCompleted
    | ToolCallRequested
    | ToolCallsCancelled
    | GoAwayReceived
    | HandleUpdated
    | TurnEnded
    | UsageReported
)


@dataclass(slots=True)
class _Turn:
    turn_id: str
    prompt: str | None  # the prompt text that asked for it, None for unprompted turns
    transcription: str = ""  # outputTranscription text (native-audio models)
    text: str = ""  # modelTurn text parts (TEXT-modality models)
    generation_complete: bool = False

    @property
    def commentary(self) -> str:
        return self.transcription if self.transcription else self.text


@dataclass(frozen=True, slots=True)
class ConnectionLoss:
    """What :meth:`LiveProtocol.connection_lost` found: events, and a prompt to send again."""

    events: tuple[ProtocolEvent, ...]
    unanswered_prompt: str | None


class LiveProtocol:
    """The logical Live session: state, newest handle, current turn, pending tool calls.

    ``setup`` holds everything of the setup message but the handle, which is
    filled in on each :meth:`start_connection`. ``want_audio_out`` turns model
    audio parts into :class:`AudioOut` payloads (dropped otherwise).
    """

    def __init__(
        self,
        setup: builders.SetupParams,
        capabilities: ModelCapabilities,
        *,
        want_audio_out: bool = False,
        backend_name: str = BACKEND_NAME,
    ) -> None:
        self._setup = setup
        self.capabilities = capabilities
        self.want_audio_out = want_audio_out
        self.backend_name = backend_name
        self.state = ConnectionState.DISCONNECTED
        self.handle: str | None = setup.resumption_handle
        self.session_id = ""
        self.connections = 0
        self.realtime_input_sent = False  # on the current logical session
        self._turn: _Turn | None = None
        self._turns = 0
        self._prompt_outstanding: str | None = None
        self._pending_calls: dict[str, str] = {}  # id -> function name
        # Calls whose connection died before they were answered: answered if the server
        # re-issues them on the next connection, else reported (``expire_orphaned_calls``).
        self._orphaned_calls: dict[str, str] = {}  # id -> function name
        # Answered on this connection with no server message since: if the connection
        # then dies abnormally, the answer may never have been read (orphans again).
        self._unconfirmed: dict[str, str] = {}  # id -> function name
        # id -> (connection number, function name, response) of answers written (bounded)
        self._answered: OrderedDict[str, tuple[int, str, dict[str, Any]]] = OrderedDict()
        self._scheduling = response_scheduling(setup.function_declarations)
        self._input_text = ""
        self.prompt_tokens = 0
        self.response_tokens = 0
        self.usage = Usage()

    # ---- introspection ---------------------------------------------------------------

    @property
    def turn_in_progress(self) -> bool:
        """A prompt awaits its answer, or the model is mid-turn (prompted or not)."""
        return self._turn is not None or self._prompt_outstanding is not None

    @property
    def prompt_outstanding(self) -> str | None:
        return self._prompt_outstanding

    @property
    def pending_tool_calls(self) -> Mapping[str, str]:
        """Function calls awaiting our response: id -> function name."""
        return dict(self._pending_calls)

    @property
    def blocking_call_pending(self) -> bool:
        """A BLOCKING call awaits our answer: the model waits for it, and streaming audio
        meanwhile draws close 1008 (LIVE_API.md "Server messages"). A call is BLOCKING
        unless its declaration said NON_BLOCKING (then its answer has a ``scheduling``)."""
        return any(name not in self._scheduling for name in self._pending_calls.values())

    @property
    def orphaned_calls(self) -> Mapping[str, str]:
        """Calls lost with the last connection, unanswered: id -> function name."""
        return dict(self._orphaned_calls)

    def awaits_reissue(self, call_id: str) -> bool:
        """The call's connection died unanswered: its answer waits for the server to re-issue it."""
        return call_id in self._orphaned_calls

    @property
    def can_send(self) -> bool:
        return self.state in (ConnectionState.ACTIVE, ConnectionState.DRAINING)

    # ---- connection lifecycle ----------------------------------------------------------

    def start_connection(self) -> str:
        """A new connection is open: the text of its ``setup`` (with the newest handle)."""
        self._require(ConnectionState.DISCONNECTED, "start a connection")
        self.state = ConnectionState.SETUP_SENT
        self.connections += 1
        return builders.encode(builders.setup(replace(self._setup, resumption_handle=self.handle)))

    def connection_lost(self, *, abnormal: bool = False) -> ConnectionLoss:
        """The current connection ended (any reason). Ends the partial turn cleanly.

        Returns the prompt whose answer never completed (to be sent again on the
        next connection) and the events that close the cut turn. Pending tool
        calls become orphans: answered if the server re-issues them on the next
        connection, reported by :meth:`expire_orphaned_calls` otherwise.
        ``abnormal`` (the server closed with an error, or the network dropped):
        answers written after the last server message may not have been read, so
        their calls become orphans too (answered again if re-issued).
        """
        if self.state is ConnectionState.CLOSED:
            return ConnectionLoss((), None)
        events: list[ProtocolEvent] = []
        unanswered: str | None = None
        turn = self._turn
        if turn is not None and turn.generation_complete:
            # The model had finished; only turnComplete was missing.
            events.extend(self._finish_turn(interrupted=False))
        else:
            unanswered = self._prompt_outstanding
            if turn is not None:
                events.extend(self._finish_turn(interrupted=True))
        events.extend(self._flush_input_transcript())
        self._prompt_outstanding = None
        self._turn = None
        self._orphaned_calls.update(self._pending_calls)
        if abnormal:
            self._orphaned_calls.update(self._unconfirmed)
        self._pending_calls.clear()
        self._unconfirmed.clear()
        self.state = ConnectionState.DISCONNECTED
        return ConnectionLoss(tuple(events), unanswered)

    def update_setup(self, setup: builders.SetupParams) -> None:
        """The setup the next connection sends (watch conditions changed at run time: their
        system instruction and ``report_condition`` declaration); the current connection
        keeps its own (the model was told in a ``realtimeInput.text``)."""
        self._setup = setup
        self._scheduling = response_scheduling(setup.function_declarations)

    @property
    def setup_params(self) -> builders.SetupParams:
        return self._setup

    def close(self) -> None:
        """The logical session is over; every later send raises."""
        self.state = ConnectionState.CLOSED

    # ---- client messages ---------------------------------------------------------------

    def send_video(self, jpeg: bytes) -> str:
        self._require_send("send video")
        self.realtime_input_sent = True
        return builders.encode(builders.realtime_video(jpeg))

    def send_audio(self, pcm: bytes, *, rate: int = 16000) -> str:
        self._require_send("send audio")
        self.realtime_input_sent = True
        return builders.encode(builders.realtime_audio(pcm, rate=rate))

    def send_audio_stream_end(self) -> str:
        self._require_send("send audioStreamEnd")
        return builders.encode(builders.audio_stream_end())

    def send_prompt(self, text: str) -> str:
        """A prompt as ``realtimeInput.text``; at most one may be outstanding."""
        self._require_send("send a prompt")
        if self.turn_in_progress:
            raise LiveStateError("a prompt is already outstanding (or the model is mid-turn)")
        if not text.strip():
            raise ValueError("prompt text is empty")
        self.realtime_input_sent = True
        self._prompt_outstanding = text
        self._turns += 1
        self._turn = _Turn(turn_id=f"t{self._turns}", prompt=text)
        return builders.encode(builders.realtime_text(text))

    def send_client_content(self, turns: Sequence[tuple[str, str]], *, turn_complete: bool = True) -> str:
        """``clientContent``; refused where the model rejects it mid-session (3.1: 1007)."""
        self._require_send("send clientContent")
        if self.realtime_input_sent and not self.capabilities.client_content_mid_session:
            raise LiveStateError(
                f"model family {self.capabilities.family} rejects clientContent mid-session; "
                "send prompts as realtimeInput.text"
            )
        return builders.encode(builders.client_content(turns, turn_complete=turn_complete))

    def send_tool_response(self, call_id: str, name: str, response: Mapping[str, Any]) -> str | None:
        """``toolResponse`` for a pending call; None when the call is unknown or was cancelled.

        The call counts as answered from here (:meth:`tool_response_unsent` undoes it
        when the write failed), so a re-issue of it is never answered twice.
        """
        self._require_send("send a toolResponse")
        if self._pending_calls.pop(call_id, None) is None:
            return None
        self._answered[call_id] = (self.connections, name, dict(response))
        self._unconfirmed[call_id] = name
        if len(self._answered) > ANSWERED_IDS_KEPT:
            self._answered.popitem(last=False)
        scheduling = self._scheduling.get(name)  # None: a BLOCKING call, no scheduling
        return builders.encode(builders.tool_response([(call_id, name, response)], scheduling=scheduling))

    def tool_response_unsent(self, call_id: str, name: str) -> None:
        """The answer from :meth:`send_tool_response` never reached the socket (the
        connection closed first): the call is unanswered again (an orphan once the
        connection is lost)."""
        self._answered.pop(call_id, None)
        self._unconfirmed.pop(call_id, None)
        calls = self._pending_calls if self.can_send else self._orphaned_calls
        calls[call_id] = name

    def earlier_answer(self, call_id: str) -> dict[str, Any] | None:
        """The answer written for ``call_id`` on an earlier connection, if any: a call the
        server re-issues after that connection died gets it again (the server never read it)."""
        earlier = self._answered.get(call_id)
        return earlier[2] if earlier is not None else None

    def expire_orphaned_calls(self) -> list[ErrorEvent]:
        """The server did not re-issue the calls lost with the last connection: one
        ``tool_call_lost`` error event per call (never retryable: the model moved on
        without the answer), and they are forgotten (a later answer is dropped)."""
        lost, self._orphaned_calls = self._orphaned_calls, {}
        return [
            ErrorEvent("tool_call_lost",
                       f"Gemini Live lost the function call {name[:64]} (id {call_id[:64]}): its connection "
                       "ended before the answer reached the server, and the server did not call it again",
                       retryable=False)
            for call_id, name in lost.items()
        ]

    # ---- server messages ---------------------------------------------------------------

    def receive(self, frame: str | bytes) -> list[ProtocolEvent]:
        """Parse one server frame and update the state; returns what happened, in order."""
        if self.state in (ConnectionState.DISCONNECTED, ConnectionState.CLOSED):
            raise LiveStateError(f"received a server message in state {self.state.value}")
        return self.receive_message(parse_server_message(frame))

    def receive_message(self, message: ServerMessage) -> list[ProtocolEvent]:
        events: list[ProtocolEvent] = []
        self._unconfirmed.clear()  # the connection still carries traffic after our answers
        if message.setup_complete is not None:
            if self.state is not ConnectionState.SETUP_SENT:
                raise LiveStateError(f"setupComplete in state {self.state.value}")
            self.state = ConnectionState.ACTIVE
            self.session_id = message.setup_complete.session_id or self.session_id
            events.append(SetupCompleted(message.setup_complete.session_id))
        if message.session_resumption_update is not None:
            update = message.session_resumption_update
            # Keep only handles the server marks resumable (proto3 omits false).
            if update.resumable and update.new_handle:
                self.handle = update.new_handle
                events.append(HandleUpdated(update.new_handle))
        if message.tool_call is not None:
            events.extend(self._tool_calls(message.tool_call.function_calls))
        if message.tool_call_cancellation is not None:
            ids = tuple(i for i in message.tool_call_cancellation.ids
                        if self._pending_calls.pop(i, None) or self._orphaned_calls.pop(i, None))
            events.append(ToolCallsCancelled(ids))
        if message.server_content is not None:
            events.extend(self._content(message.server_content))
        if message.usage_metadata is not None:
            usage = message.usage_metadata
            self.prompt_tokens += usage.prompt_token_count
            self.response_tokens += usage.response_token_count
            self.usage += usage.usage  # one usageMetadata per turn: sum them (vision_stream.usage)
            events.append(
                UsageReported(usage.prompt_token_count, usage.response_token_count, usage.total_token_count)
            )
        if message.go_away is not None:
            if self.state is ConnectionState.ACTIVE:
                self.state = ConnectionState.DRAINING
            events.append(GoAwayReceived(message.go_away.time_left))
        return events

    def _tool_calls(self, calls: Sequence[FunctionCall]) -> list[ProtocolEvent]:
        """Calls to answer. One already answered on this connection (sent again) is not
        answered twice. One lost with the last connection, or answered on a connection
        that died before the server read it, is pending again, marked ``reissued``
        (its answer may still wait in the outbox, or be :meth:`earlier_answer`)."""
        events: list[ProtocolEvent] = []
        for call in calls:
            earlier = self._answered.get(call.id)
            if earlier is not None and earlier[0] == self.connections:
                continue
            reissued = self._orphaned_calls.pop(call.id, None) is not None or earlier is not None
            self._pending_calls[call.id] = call.name
            events.append(ToolCallRequested(call, detection_of(call, self.backend_name), reissued=reissued))
        return events

    def _content(self, content: ServerContent) -> list[ProtocolEvent]:
        events: list[ProtocolEvent] = []
        if content.input_transcription is not None and content.input_transcription.text:
            self._input_text += content.input_transcription.text
            final = content.input_transcription.finished
            events.append(Transcript(self._input_text.strip(), source="input", final=final))
            if final:
                self._input_text = ""
        delta = False
        for part in content.parts:
            if part.thought:
                continue  # thoughts are not commentary
            if part.text:
                self._ensure_turn().text += part.text
                delta = True
            if part.inline_data is not None and part.inline_data.mime_type.startswith("audio/"):
                turn = self._ensure_turn()
                if self.want_audio_out:
                    rate = part.inline_data.sample_rate or 24000
                    events.append(AudioOut(part.inline_data.data, sample_rate=rate, turn_id=turn.turn_id))
        if content.output_transcription is not None and content.output_transcription.text:
            self._ensure_turn().transcription += content.output_transcription.text
            delta = True
        if delta and self._turn is not None and self._turn.commentary.strip():
            turn = self._turn
            partial = Commentary(turn.commentary.strip(), final=False, turn_id=turn.turn_id, backend=self.backend_name)
            events.append(partial)
        if content.generation_complete and self._turn is not None:
            self._turn.generation_complete = True
        if content.interrupted:
            # The model stopped mid-turn: close the partial turn with what was said.
            events.extend(self._finish_turn(interrupted=True))
            self._prompt_outstanding = None
        if content.turn_complete:
            if content.model_still_working:
                # 3.8 ``interactionStatus: IN_PROGRESS``: this turnComplete closed an
                # output chunk only; the turn (and its one final commentary) goes on
                # until IDLE. Not finished yet, so a connection lost now cuts it.
                if self._turn is not None:
                    self._turn.generation_complete = False
            else:
                events.extend(self._finish_turn(interrupted=False))
                events.extend(self._flush_input_transcript())
                self._prompt_outstanding = None
        events.extend(self._turn_failure(content.turn_complete_reason))
        return events

    def _turn_failure(self, reason: str) -> list[ProtocolEvent]:
        """An ``error`` event naming a ``turnCompleteReason`` that is a failure.

        Retryable: the next prompt (with new frames) is a new attempt. A
        malformed function call is the model's slip; anything else (a rejected
        response, prohibited content) is the service refusing, like REST's
        ``blocked``. ``NEED_MORE_INPUT`` is no failure: nothing is reported.
        """
        if reason in QUIET_TURN_REASONS:
            return []
        shown = reason[:64]
        if reason == "MALFORMED_FUNCTION_CALL":
            return [ErrorEvent("malformed_function_call",
                               f"Gemini Live ended a turn with {shown}: the model's function call was malformed",
                               retryable=True)]
        return [ErrorEvent("blocked", f"Gemini Live ended a turn with {shown}: the model's answer was withheld",
                           retryable=True)]

    # ---- helpers -----------------------------------------------------------------------

    def _ensure_turn(self) -> _Turn:
        if self._turn is None:
            # The model spoke without our prompt (proactive audio, or it heard speech).
            self._turns += 1
            self._turn = _Turn(turn_id=f"t{self._turns}", prompt=None)
        return self._turn

    def _finish_turn(self, *, interrupted: bool) -> list[ProtocolEvent]:
        turn = self._turn
        if turn is None:
            return []
        self._turn = None
        events: list[ProtocolEvent] = []
        text = turn.commentary.strip()
        if text:
            events.append(Commentary(text, final=True, turn_id=turn.turn_id, backend=self.backend_name))
        events.append(TurnEnded(turn.turn_id, interrupted=interrupted, prompted=turn.prompt is not None))
        return events

    def _flush_input_transcript(self) -> list[ProtocolEvent]:
        text = self._input_text.strip()
        self._input_text = ""
        return [Transcript(text, source="input", final=True)] if text else []

    def _require(self, state: ConnectionState, action: str) -> None:
        if self.state is not state:
            raise LiveStateError(f"cannot {action} in state {self.state.value} (needs {state.value})")

    def _require_send(self, action: str) -> None:
        if not self.can_send:
            raise LiveStateError(f"cannot {action} in state {self.state.value} (needs active or draining)")


def response_scheduling(declarations: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Function name -> the ``scheduling`` of our answers, for NON_BLOCKING declarations only
    (a BLOCKING call's answer carries none): SILENT for ``report_event`` and ``report_condition``
    (our "ok" needs no new turn), WHEN_IDLE otherwise."""
    return {
        str(d.get("name")): SILENT if d.get("name") in (REPORT_EVENT, REPORT_CONDITION) else WHEN_IDLE
        for d in declarations
        if d.get("behavior") == "NON_BLOCKING"
    }


def detection_of(call: FunctionCall, backend: str) -> Detection:
    """The Detection event a function call becomes: ``report_event`` arguments read
    (bounded severity and confidence), any other function passed through as called."""
    args_json = json.dumps(call.args, sort_keys=True, ensure_ascii=False)
    if call.name != REPORT_EVENT:
        return Detection(
            label=call.name,
            backend=backend,
            function_name=call.name,
            call_id=call.id,
            arguments_json=args_json,
        )
    args = call.args
    severity = str(args.get("severity", "info")).lower()
    try:
        confidence = min(max(float(args.get("confidence", 0.0)), 0.0), 1.0)
    except (TypeError, ValueError):
        confidence = 0.0
    return Detection(
        label=str(args.get("label", "event")) or "event",
        description=str(args.get("description", "")),
        severity=severity if severity in SEVERITIES else "info",
        confidence=confidence,
        backend=backend,
        function_name=call.name,
        call_id=call.id,
        arguments_json=args_json,
    )
