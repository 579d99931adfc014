"""A loopback emulator of Google's Live API server (``BidiGenerateContent``).

It speaks the real wire protocol (LIVE_API.md): the real path, the
``x-goog-api-key`` header, strict validation of every client message
(``live_validation.py``), JSON answers in *binary* frames, pretty-printed and
camelCase, the real close codes and reason texts. Prompts are answered with
commentary about the frames actually received since the last turn (the
offline analyzer's ``describe_jpegs``), as 24 kHz PCM audio parts (a short
tone) plus ``outputTranscription`` chunks, then ``generationComplete``,
``turnComplete`` + ``usageMetadata``. A scene change (a detection) becomes a
``report_event`` call when that tool is declared; the turn waits for its
``toolResponse``. Source audio is "transcribed" honestly as
``[speech 1.2 s]`` from its energy. ``sessionResumptionUpdate`` handles are
issued and accepted on reconnect (the session state continues); connections
get a ``goAway`` and are closed after their lifetime; audio+video sessions
without compression end after their (scalable) limit. Faults are injected
through :class:`~vision_stream.testing.live_knobs.EmulatorKnobs`.

Paths: every API version Google serves (``v1``, the official SDK's default,
``v1beta``, ``v1alpha``) for ``BidiGenerateContent`` (API key:
``x-goog-api-key`` or ``?key=``) and ``BidiGenerateContentConstrained``
(ephemeral token: ``Authorization: Token auth_tokens/...`` or
``?access_token=auth_tokens/...``, minted by the REST half's
``POST /v1alpha/auth_tokens``, :mod:`.auth_tokens`); Vertex's
``LlmBidiService`` on ``v1beta1``/``v1``. Any other path answers Google's
front-end 404 page before the upgrade. A token on the plain method is no key:
the connection is accepted, then closed 1008 "Method doesn't allow
unregistered callers ..." (the close reason users of ``?access_token=`` on
the wrong method report, cut to 123 bytes by the close frame).

Emulator choices where Google's exact behaviour is unknown: an unknown or
expired resumption handle closes 1007 "Request contains an invalid
argument."; the session-length limit closes 1000 "Session time limit
exceeded." and invalidates the session's handles; an invalid, expired,
spent or model-locked ephemeral token closes 1008 with a reason saying which;
the emulator never answers speech on its own (it answers prompts only).

Every client message is recorded (``received``) for schema tests.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import math
import secrets
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..backends.prompts import parse_condition_lines
from ..conditions.live import REPORT_CONDITION
from ..events import ConditionVerdict, Detection
from ..redact import RedactingLogger
from .auth_tokens import AuthTokens, TokenRefused
from .emulator_base import EmulatorServer, Listening, proto_duration
from .live_catalogue import EmulatedModel, find_model, setup_refusal
from .live_knobs import EmulatorKnobs, Fault
from .live_usage import ContextMeter, jpeg_tokens, text_tokens
from .live_validation import (
    BAD_KEY,
    INVALID_ARGUMENT,
    NO_KEY,
    NON_AUDIO,
    ClientMessage,
    Reject,
    audio_rate,
    camel,
    close_reason,
    model_not_found,
    parse_client_frame,
)

log = logging.getLogger("vision_stream.testing.live_emulator")

GEMINI_PATH = "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
CONSTRAINED_PATH = GEMINI_PATH + "Constrained"
VERTEX_PATH = "/ws/google.cloud.aiplatform.{version}.LlmBidiService/BidiGenerateContent"
GEMINI_VERSIONS = ("v1", "v1beta", "v1alpha")
VERTEX_VERSIONS = ("v1beta1", "v1")


class Route(NamedTuple):
    """What a WebSocket path names: the API (``gemini`` or ``vertex``), its version, and
    whether it is the ephemeral-token method (``BidiGenerateContentConstrained``)."""

    api: str
    version: str
    constrained: bool = False


PATHS: dict[str, Route] = (
    {GEMINI_PATH.format(version=v): Route("gemini", v) for v in GEMINI_VERSIONS}
    | {CONSTRAINED_PATH.format(version=v): Route("gemini", v, True) for v in GEMINI_VERSIONS}
    | {VERTEX_PATH.format(version=v): Route("vertex", v) for v in VERTEX_VERSIONS}
)
# Google's front end answers a path it does not serve (an unknown API version,
# a misspelt method) with this page, HTTP 404, before any WebSocket upgrade.
NOT_FOUND_PAGE = """<!DOCTYPE html>
<html lang=en>
  <meta charset=utf-8>
  <meta name=viewport content="initial-scale=1, minimum-scale=1, width=device-width">
  <title>Error 404 (Not Found)!!1</title>
  <a href=//www.google.com/><span id=logo aria-label=Google></span></a>
  <p><b>404.</b> <ins>That’s an error.</ins>
  <p>The requested URL <code>{path}</code> was not found on this server.  <ins>That’s all we know.</ins>
"""
OUT_RATE = 24000  # Hz: model speech (LIVE_API.md "Media")
SPEECH_RMS = 500.0  # int16 RMS above which a chunk counts as speech (about -36 dBFS)
SPEECH_END_SILENCE = 0.6  # seconds of quiet that end an utterance


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One client frame as received: connection number, text, and whether it was binary."""

    connection: int
    text: str
    binary: bool = False


@dataclass(slots=True)
class ConnectionRecord:
    """What happened on one accepted connection (for tests and the log)."""

    number: int
    path: str
    handle: str | None = None  # the resumption handle the client presented
    newest_handle: str | None = None  # the newest handle of that session when it was presented
    session_id: str = ""
    setup_complete: bool = False
    close_code: int | None = None  # set when the emulator closed it
    close_reason: str = ""
    close_detail: str = ""


@dataclass(slots=True)
class _SpeechTracker:
    """Energy-based utterance detector for honest input "transcription"."""

    speaking: bool = False
    speech_seconds: float = 0.0
    silence_seconds: float = 0.0

    def feed(self, pcm: bytes, rate: int) -> float | None:
        """Feed a chunk; the finished utterance's length in seconds when one ended."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return None
        duration = samples.size / rate
        loud = math.sqrt(float(np.mean(samples * samples))) > SPEECH_RMS
        if loud:
            self.speaking = True
            self.speech_seconds += duration + self.silence_seconds
            self.silence_seconds = 0.0
            return None
        if self.speaking:
            self.silence_seconds += duration
            if self.silence_seconds >= SPEECH_END_SILENCE:
                return self.flush()
        return None

    def flush(self) -> float | None:
        length = self.speech_seconds if self.speaking else None
        self.speaking = False
        self.speech_seconds = self.silence_seconds = 0.0
        return length


@dataclass(slots=True)
class EmulatedSession:
    """Server-side state of one logical session; survives reconnects via handles."""

    session_id: str
    model: EmulatedModel
    created_at: float  # monotonic seconds
    frames: deque[bytes]
    compression: bool = True
    tools: frozenset[str] = frozenset()
    media_resolution: str = "MEDIA_RESOLUTION_LOW"
    handles: list[str] = field(default_factory=list)
    turns: int = 0
    frames_total: int = 0
    frames_since_turn: int = 0
    audio_seconds: float = 0.0
    audio_seconds_since_turn: float = 0.0
    has_video: bool = False
    has_audio: bool = False
    realtime_seen: bool = False
    ended: bool = False
    speech: _SpeechTracker = field(default_factory=_SpeechTracker)
    prompts: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    unanswered: dict[str, dict[str, Any]] = field(default_factory=dict)  # call id -> functionCall
    context: ContextMeter = field(default_factory=ContextMeter)  # what each turn bills (live_usage)
    # Watch conditions (issue 12): id -> text as the instructions name them, judged by the
    # offline signals of the frames received (signal_judge); the state last reported per id.
    conditions: dict[str, str] = field(default_factory=dict)
    reported: dict[str, bool] = field(default_factory=dict)
    judge: Any = None  # signal_judge.SignalJudge, made on first use
    # sha256 of every frame received, in order (bounded): what tests compare evidence with.
    frame_hashes: deque[str] = field(default_factory=lambda: deque(maxlen=4096))


def _tone(seconds: float = 0.1, hz: float = 220.0) -> bytes:
    t = np.arange(int(OUT_RATE * seconds)) / OUT_RATE
    return (np.sin(2 * np.pi * hz * t) * 3000).astype("<i2").tobytes()


_TONE = _tone()


def _describe(jpegs: Sequence[bytes]) -> tuple[str, list[Detection]]:
    """Commentary and detections for the frames, by the offline analyzer.

    The prompt is not passed: the analyzer would echo it with a disclaimer,
    while the emulator plays a model answering it.
    """
    # Imported lazily: the analyzer pulls in OpenCV pipelines that importers of
    # ``vision_stream.testing`` may not need.
    from ..backends.local import describe_jpegs

    return describe_jpegs(jpegs)


def instruction_text(content: Any) -> str:
    """The text of a ``systemInstruction`` (a string, or a Content with text parts)."""
    if isinstance(content, str):
        return content
    parts = content.get("parts") if isinstance(content, dict) else None
    return "\n".join(str(p.get("text", "")) for p in parts or () if isinstance(p, dict))


def _decodable_image(data: bytes) -> bool:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    return image is not None and image.size > 0


class LiveEmulator(EmulatorServer):
    """The emulated server. ``async with LiveEmulator(knobs) as emu: emu.url`` ...

    ``knobs`` may be replaced between connections (tests change faults mid-run).
    """

    scheme = "ws"  # the client appends the standard path

    def __init__(self, knobs: EmulatorKnobs | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 tokens: AuthTokens | None = None, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(host=host, port=port)
        self.knobs = knobs or EmulatorKnobs()
        # A server TLS context serves wss://: the official SDK always connects with TLS
        # (google/genai/_api_client.py ``_websocket_base_url`` forces the scheme to wss).
        self.tls = tls
        # Ephemeral tokens, shared with the REST emulator that mints them.
        self.tokens = tokens if tokens is not None else AuthTokens()
        self.received: deque[ReceivedMessage] = deque(maxlen=self.knobs.record_limit)
        self.sent: deque[str] = deque(maxlen=self.knobs.record_limit)  # server JSON texts
        self.connections: list[ConnectionRecord] = []
        self.sessions: dict[str, EmulatedSession] = {}
        self.handles: dict[str, EmulatedSession] = {}
        self.upgrade_attempts = 0
        self.toolcall_fault_fired = False  # ``toolcall_then`` strikes once per emulator
        self._session_ids = itertools.count(1)
        self._handlers: set[asyncio.Task[Any]] = set()

    # ---- lifecycle (start/close/port/url: EmulatorServer) -----------------------------------

    async def _listen(self) -> Listening:
        return await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            ssl=self.tls,
            max_size=32 * 1024 * 1024,
            max_queue=self.knobs.max_queue,
            ping_interval=None,  # the client keeps the connection alive
            close_timeout=1.0,
            logger=RedactingLogger(logging.getLogger("vision_stream.testing.live_emulator.ws")),
        )

    @property
    def url(self) -> str:
        """``ws://host:port``, or ``wss://`` when serving TLS (clients append the API's path)."""
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"

    # ---- inspection helpers --------------------------------------------------------------

    def client_messages(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Recorded client messages as JSON objects (optionally only those with top-level ``kind``).

        Top-level keys are camelCased, as the server reads them: the official SDK
        sends ``tool_response`` (google/genai/live.py ``send_tool_response``).
        """
        out = []
        for message in self.received:
            try:
                obj = json.loads(message.text)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                obj = {camel(key): value for key, value in obj.items()}
            if kind is None or (isinstance(obj, dict) and kind in obj):
                out.append(obj)
        return out

    # ---- HTTP upgrade --------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.upgrade_attempts += 1
        knobs = self.knobs
        if knobs.refuse_status is not None and (knobs.refuse_count == 0 or self.upgrade_attempts <= knobs.refuse_count):
            status = HTTPStatus(knobs.refuse_status)
            log.info("emulator refuses Live upgrade %d: HTTP %d (knob refuse)", self.upgrade_attempts, status)
            return connection.respond(status, f"{status.phrase}\n")
        path = request.path.split("?", 1)[0]
        if path not in PATHS:
            response = connection.respond(HTTPStatus.NOT_FOUND, NOT_FOUND_PAGE.format(path=escape(path[:200])))
            del response.headers["Content-Type"]  # websockets' respond() writes text/plain
            response.headers["Content-Type"] = "text/html; charset=UTF-8"
            return response
        return None

    # ---- one connection ------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        record = ConnectionRecord(number=len(self.connections) + 1, path=ws.request.path if ws.request else "")
        self.connections.append(record)
        log.info("emulator: Live connection %d from %s", record.number, _peer(ws))
        conn = _EmulatorConnection(self, ws, record)
        await conn.run()

    def new_handle(self, session: EmulatedSession) -> str:
        """A fresh valid handle; it counts as the session's newest only once delivered."""
        handle = f"{session.session_id}-{len(self.handles) + 1}-{secrets.token_hex(6)}"
        self.handles[handle] = session
        return handle

    def new_session(self, model: EmulatedModel) -> EmulatedSession:
        session_id = f"s{next(self._session_ids)}"
        session = EmulatedSession(
            session_id=session_id,
            model=model,
            created_at=time.monotonic(),
            frames=deque(maxlen=self.knobs.frames_per_turn),
        )
        self.sessions[session_id] = session
        return session


class _EmulatorConnection:
    """One accepted WebSocket: setup, then read/answer until closed."""

    def __init__(self, emulator: LiveEmulator, ws: ServerConnection, record: ConnectionRecord) -> None:
        self.emu = emulator
        self.ws = ws
        self.record = record
        self.knobs = emulator.knobs
        self.session: EmulatedSession | None = None
        self.route = PATHS.get(record.path.split("?", 1)[0], Route("gemini", "v1beta"))
        self.api_version = self.route.version
        self._send_lock = asyncio.Lock()
        self._stalled = False
        self._turn: asyncio.Task[None] | None = None
        self._tool_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._setup_at = 0.0
        self._go_away_sent = False
        self._blocking: frozenset[str] = frozenset()  # declared functions the model waits for
        self._last_client_at = time.monotonic()  # the last client message (idle_reap)
        self._tasks: list[asyncio.Task[None]] = []  # closers started by faults

    async def run(self) -> None:
        timers: list[asyncio.Task[None]] = []
        try:
            await self._setup()
            timers.append(asyncio.create_task(self._lifetime()))
            if self.knobs.idle_reap:
                timers.append(asyncio.create_task(self._idle_reaper()))
            for fault in self.knobs.faults:
                if fault.applies_to(self.record.number):
                    timers.append(asyncio.create_task(self._fault(fault)))
            await self._read_loop()
        except Reject as reject:
            await self._close(reject.code, reject.reason, reject.detail)
        except ConnectionClosed:
            pass
        finally:
            for task in [*timers, *self._tasks, self._turn]:
                if task is not None:
                    task.cancel()
            for task in [*timers, *self._tasks, self._turn]:
                if task is not None:
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await task

    # ---- I/O helpers ---------------------------------------------------------------------

    async def _recv(self) -> str | bytes:
        if self.knobs.read_delay:
            await asyncio.sleep(self.knobs.read_delay)
        frame = await self.ws.recv()
        self._last_client_at = time.monotonic()
        text = frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")
        self.emu.received.append(ReceivedMessage(self.record.number, text, binary=isinstance(frame, bytes)))
        return frame

    async def _send(self, message: dict[str, Any]) -> bool:
        """One server message: pretty-printed camelCase JSON in a binary frame, like Google.

        Returns whether it was written (False while stalled).
        """
        if self._stalled:
            return False
        text = json.dumps(message, indent=2, ensure_ascii=False) + "\n"
        async with self._send_lock:
            if self.knobs.latency:
                await asyncio.sleep(self.knobs.latency)
            if self._stalled:
                return False
            await self.ws.send(text.encode("utf-8"))
            self.emu.sent.append(text)
            return True

    async def _close(self, code: int, reason: str, detail: str = "") -> None:
        if self.record.close_code is None:
            self.record.close_code, self.record.close_reason = code, close_reason(reason)
            self.record.close_detail = detail or reason
            log.info("emulator closes connection %d: %d %s (%s)", self.record.number, code, reason, detail)
        await self.ws.close(code, close_reason(reason))

    # ---- setup ---------------------------------------------------------------------------

    def _credential_error(self) -> Reject | None:
        """Whether the upgrade carried the credential its method needs (the token itself is
        spent in :meth:`_redeem_token`, once setup says whether this is a resumption)."""
        assert self.ws.request is not None
        headers: Headers = self.ws.request.headers
        query = parse_qs(urlsplit(self.record.path).query)
        if self.route.api == "vertex":
            token = headers.get("Authorization", "")
            if not token.startswith("Bearer ") or not token[7:].strip():
                return Reject(1008, NO_KEY, "missing bearer token")
            return None
        if self.route.constrained:
            return None if self._ephemeral_token() else Reject(1008, NO_KEY, "no ephemeral token")
        # The plain method takes an API key only: a token (header or ?access_token=) is no key.
        key = headers.get("x-goog-api-key", "") or (query.get("key") or [""])[0]
        if not key:
            return Reject(1008, NO_KEY, "no API key")
        if self.knobs.api_keys and key not in self.knobs.api_keys:
            return Reject(1007, BAD_KEY, "API key not accepted")
        return None

    def _ephemeral_token(self) -> str:
        """The token of a Constrained upgrade: ``Authorization: Token ...`` (the SDKs' way) or
        ``?access_token=`` (browsers, which cannot set upgrade headers)."""
        assert self.ws.request is not None
        header = self.ws.request.headers.get("Authorization", "")
        if header.startswith("Token ") and header[6:].strip():
            return header[6:].strip()
        return (parse_qs(urlsplit(self.record.path).query).get("access_token") or [""])[0]

    def _redeem_token(self, model: str, *, resumption: bool) -> None:
        if not self.route.constrained:
            return
        try:
            self.emu.tokens.redeem(self._ephemeral_token(), model=model, new_session=not resumption)
        except TokenRefused as refused:
            raise Reject(1008, str(refused), "ephemeral token refused") from None

    async def _setup(self) -> None:
        frame = await self._recv()
        error = self._credential_error()
        if error is not None:
            raise error
        message = parse_client_frame(frame)
        if message.kind != "setup":
            raise Reject(1007, INVALID_ARGUMENT, f"first message must be setup, got {message.kind}")
        setup = message.body
        model_name = str(setup.get("model") or "")
        model = find_model(model_name)
        if model is None or not model_name.startswith(("models/", "projects/")):
            raise Reject(1008, model_not_found(model_name or "models/", self.api_version), "unknown model")
        generation = setup.get("generationConfig") or {}
        modalities = generation.get("responseModalities") or ["AUDIO"]
        if model.native_audio and "TEXT" in modalities:
            raise Reject(1007, NON_AUDIO, "TEXT modality on a native-audio model")
        resumption = setup.get("sessionResumption")
        handle = None
        if resumption is not None:
            if "handle" in resumption and resumption["handle"] is None and not model.null_handle_ok:
                raise Reject(1007, INVALID_ARGUMENT, "sessionResumption.handle: null")
            handle = resumption.get("handle")
        proactivity = setup.get("proactivity") or {}
        if proactivity.get("proactiveAudio") is False and model.proactive_audio_always:
            raise Reject(1007, INVALID_ARGUMENT, "proactiveAudio: false on an always-proactive model")
        thinking = generation.get("thinkingConfig") or {}
        if "thinkingLevel" in thinking and not model.thinking_level_ok:
            raise Reject(1007, INVALID_ARGUMENT, "thinkingLevel not supported")
        refusal = setup_refusal(model, setup)  # the model's own profile (live_catalogue)
        if refusal is not None:
            raise Reject(1007, INVALID_ARGUMENT, refusal)
        compression = setup.get("contextWindowCompression")
        if compression is not None and "slidingWindow" not in compression:
            raise Reject(1007, INVALID_ARGUMENT, "contextWindowCompression without slidingWindow")
        self._redeem_token(model_name, resumption=bool(handle))
        if handle:
            session = self.emu.handles.get(handle)
            if session is None or session.ended or session.model is not model:
                raise Reject(1007, INVALID_ARGUMENT, "unknown or expired session resumption handle")
        else:
            session = self.emu.new_session(model)
            session.context = ContextMeter.from_setup(setup)
        session.compression = compression is not None
        session.tools = frozenset(
            str(d.get("name", ""))
            for tool in setup.get("tools") or ()
            for d in tool.get("functionDeclarations") or ()
        )
        session.media_resolution = str(generation.get("mediaResolution") or "MEDIA_RESOLUTION_MEDIUM")
        named = parse_condition_lines(instruction_text(setup.get("systemInstruction")))
        if named or not handle:  # a fresh setup names the set; a resumed one keeps it unless it names one
            session.conditions = named
        self._blocking = frozenset(
            str(d.get("name", ""))
            for tool in setup.get("tools") or ()
            for d in tool.get("functionDeclarations") or ()
            if d.get("behavior", "NON_BLOCKING" if model.non_blocking_default else "BLOCKING") == "BLOCKING"
        )
        self.session = session
        self.record.handle = handle
        self.record.newest_handle = session.handles[-1] if handle and session.handles else None
        self.record.session_id = session.session_id
        await self._send({"setupComplete": {}})
        self.record.setup_complete = True
        self._setup_at = time.monotonic()
        if resumption is not None:
            await self._issue_handle()
        if handle and self.knobs.reissue_calls and session.unanswered:
            await self._call(list(session.unanswered.values()))  # the same ids, again

    async def _issue_handle(self) -> None:
        assert self.session is not None
        handle = self.emu.new_handle(self.session)
        # Written before the client's close frame was read, so the client is
        # bound to receive it (a send after that raises ConnectionClosed).
        if await self._send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}):
            self.session.handles.append(handle)

    # ---- reading -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            frame = await self._recv()
            await self._dispatch(parse_client_frame(frame))

    async def _dispatch(self, message: ClientMessage) -> None:
        session = self.session
        assert session is not None
        body = message.body
        if message.kind == "setup":
            raise Reject(1007, INVALID_ARGUMENT, "setup sent twice")
        if message.kind == "realtimeInput":
            session.realtime_seen = True
            if "video" in body:
                await self._video(body["video"])
            elif "audio" in body:
                await self._audio(body["audio"])
            elif body.get("audioStreamEnd"):
                length = session.speech.flush()
                if length:
                    await self._input_transcription(length)
            elif "text" in body:
                if not body["text"].strip():
                    raise Reject(1007, INVALID_ARGUMENT, "empty realtimeInput.text")
                self._conditions_changed(body["text"])
                self._start_turn(body["text"])
        elif message.kind == "clientContent":
            if session.realtime_seen and not session.model.client_content_mid_session:
                raise Reject(1007, INVALID_ARGUMENT, "clientContent mid-session on this model")
            if body.get("turnComplete"):
                texts = [
                    p.get("text", "")
                    for turn in body.get("turns") or ()
                    if turn.get("role", "user") == "user"
                    for p in turn.get("parts") or ()
                ]
                self._start_turn(" ".join(t for t in texts if t) or "(empty turn)")
        elif message.kind == "toolResponse":
            for response in body.get("functionResponses") or ():
                call_id = response.get("id")
                if not call_id:
                    # The Gemini API needs the id of the call (LIVE_API.md "Client messages").
                    raise Reject(1007, INVALID_ARGUMENT, "functionResponses[].id missing")
                if "scheduling" in response and not session.model.non_blocking_ok:
                    raise Reject(1007, INVALID_ARGUMENT, "scheduling on a model without NON_BLOCKING calls")
                session.unanswered.pop(call_id, None)
                waiter = self._tool_waiters.pop(call_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(dict(response.get("response") or {}))
        self._check_session_limit()

    async def _video(self, blob: dict[str, Any]) -> None:
        session = self.session
        assert session is not None
        if blob.get("mimeType") not in ("image/jpeg", "image/png"):
            raise Reject(1007, INVALID_ARGUMENT, f"video mimeType {blob.get('mimeType')!r}")
        data: bytes = blob.get("data") or b""
        if not await asyncio.to_thread(_decodable_image, data):
            raise Reject(1007, INVALID_ARGUMENT, "video frame is not a decodable image")
        session.frames.append(data)
        session.frame_hashes.append(hashlib.sha256(data).hexdigest())
        log.debug("emulator: frame %d received, sha256 %s", session.frames_total + 1, session.frame_hashes[-1])
        session.context.add("VIDEO", jpeg_tokens(data, session.media_resolution))
        session.frames_total += 1
        session.frames_since_turn += 1
        session.has_video = True

    async def _audio(self, blob: dict[str, Any]) -> None:
        session = self.session
        assert session is not None
        rate = audio_rate(str(blob.get("mimeType", "")))
        data: bytes = blob.get("data") or b""
        if len(data) % 2:
            raise Reject(1007, INVALID_ARGUMENT, "PCM16 audio with an odd byte count")
        if any(name in self._blocking for name in self._pending_calls()):
            # Streaming audio while a BLOCKING call is pending (LIVE_API.md "Server messages").
            raise Reject(1008, "The operation was aborted", "audio while a BLOCKING call is pending")
        seconds = len(data) / 2 / rate
        session.audio_seconds += seconds
        session.audio_seconds_since_turn += seconds
        session.context.add_audio(seconds)
        session.has_audio = True
        length = session.speech.feed(data, rate)
        if length:
            await self._input_transcription(length)

    async def _input_transcription(self, seconds: float) -> None:
        text = f"[speech {seconds:.1f} s]"
        await self._send({"serverContent": {"inputTranscription": {"text": text, "finished": True}}})

    def _check_session_limit(self) -> None:
        session = self.session
        assert session is not None
        if session.compression or not session.has_audio:
            return
        limit = self.knobs.av_session_limit if session.has_video else self.knobs.audio_session_limit
        if time.monotonic() - session.created_at > limit:
            session.ended = True
            raise Reject(1000, "Session time limit exceeded.", "session length limit without compression")

    # ---- answering -----------------------------------------------------------------------

    def _start_turn(self, prompt: str) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
            self._turn = asyncio.create_task(self._interrupted_then(prompt))
        else:
            self._turn = asyncio.create_task(self._answer(prompt))

    async def _interrupted_then(self, prompt: str) -> None:
        await self._send({"serverContent": {"interrupted": True}})
        await self._answer(prompt)

    async def _answer(self, prompt: str) -> None:
        session = self.session
        assert session is not None
        session.turns += 1
        session.prompts.append(prompt)
        session.context.add("TEXT", text_tokens(prompt))
        # Frames since the last turn; with none new, the recent window (the model
        # still has them in context).
        recent = list(session.frames)
        frames = recent[-session.frames_since_turn:] if session.frames_since_turn else recent
        frame_count = session.frames_since_turn
        session.frames_since_turn, session.audio_seconds_since_turn = 0, 0.0
        # During a turn the state is not resumable (proto3 JSON omits false/"").
        await self._send({"sessionResumptionUpdate": {}})
        text, detections = await asyncio.to_thread(_describe, frames)
        # Only new frames can hold a new event; the recent window was reported already.
        if detections and frame_count and self.knobs.call_function in session.tools:
            await self._report(detections[:3])
        if frame_count and session.conditions and REPORT_CONDITION in session.tools:
            await self._report_conditions(frames)
        words = text.split()
        starts = range(0, len(words), 4)
        # 3.8: the answer goes out as two chunks, the first closed by a turnComplete
        # with interactionStatus IN_PROGRESS (the model keeps working).
        split_at = starts[len(starts) // 2] if session.model.interaction_status and len(starts) > 1 else None
        for index in starts:
            if index == split_at:
                await self._send({"serverContent": {"turnComplete": True, "interactionStatus": "IN_PROGRESS"}})
            chunk = " ".join(words[index:index + 4])
            if index:
                chunk = " " + chunk
            await self._send(
                {
                    "serverContent": {
                        "modelTurn": {
                            "parts": [{"inlineData": {"mimeType": f"audio/pcm;rate={OUT_RATE}",
                                                      "data": _b64(_TONE)}}]
                        }
                    }
                }
            )
            await self._send({"serverContent": {"outputTranscription": {"text": chunk}}})
            if self.knobs.speech_pace:
                await asyncio.sleep(self.knobs.speech_pace)
        session.answers.append(text)
        await self._send({"serverContent": {"generationComplete": True}})
        # The whole context billed again this turn (testing/live_usage.py).
        usage = session.context.turn(text)
        await self._send(
            {
                "serverContent": {"turnComplete": True,
                                  **({"interactionStatus": "IDLE"} if session.model.interaction_status else {})},
                "usageMetadata": usage,
            }
        )
        await self._issue_handle()

    async def _report(self, detections: Sequence[Detection]) -> None:
        calls: list[dict[str, Any]] = []
        for detection in detections:
            call_id = f"function-call-{secrets.randbelow(10**19)}"
            calls.append(
                {
                    "id": call_id,
                    "name": self.knobs.call_function,
                    "args": {
                        "label": detection.label,
                        "description": detection.description,
                        "severity": detection.severity,
                        "confidence": round(float(detection.confidence), 3),
                    },
                }
            )
        await self._call_and_wait(calls)

    def _conditions_changed(self, text: str) -> None:
        """A ``realtimeInput.text`` naming a new set of watch conditions replaces the set."""
        assert self.session is not None
        named = parse_condition_lines(text)
        if named or text.startswith("Stop watching the conditions"):
            self.session.conditions = named
            self.session.reported = {k: v for k, v in self.session.reported.items() if k in named}

    async def _report_conditions(self, frames: Sequence[bytes]) -> None:
        """``report_condition`` for each condition whose state changed in these frames
        (true: some frame shows it; the offline signals judge: signal_judge)."""
        from .signal_judge import SignalJudge  # lazily: OpenCV's analyzer

        session = self.session
        assert session is not None
        if session.judge is None:
            session.judge = SignalJudge()
        verdicts: dict[str, ConditionVerdict] = await asyncio.to_thread(session.judge.judge, frames,
                                                                        dict(session.conditions))
        calls = []
        for cid, verdict in verdicts.items():
            if verdict.met == session.reported.get(cid, False):
                continue
            session.reported[cid] = verdict.met
            log.info("emulator: report_condition %s met=%s (%s)", cid, verdict.met, verdict.evidence)
            calls.append({"id": f"function-call-{secrets.randbelow(10**19)}", "name": REPORT_CONDITION,
                          "args": {"condition_id": cid, "met": verdict.met,
                                   "confidence": round(float(verdict.confidence), 3),
                                   "evidence": verdict.evidence or "no longer seen"}})
        if calls:
            await self._call_and_wait(calls)

    async def _call_and_wait(self, calls: list[dict[str, Any]]) -> None:
        """One ``toolCall``; the turn waits for its answers (``tool_timeout`` at most)."""
        # ``toolcall_then=goaway_same``: the goAway rides in the toolCall's own message.
        same = self.knobs.toolcall_then == "goaway_same" and not self.emu.toolcall_fault_fired
        waiters = await self._call(calls, with_go_away=same)
        await self._toolcall_fault()
        try:
            async with asyncio.timeout(self.knobs.tool_timeout):
                await asyncio.gather(*waiters)
        except TimeoutError:
            log.info("emulator: no toolResponse within %.1f s; going on", self.knobs.tool_timeout)
        finally:
            for call in calls:
                self._tool_waiters.pop(call["id"], None)

    async def _call(self, calls: list[dict[str, Any]], *,
                    with_go_away: bool = False) -> list[asyncio.Future[dict[str, Any]]]:
        """Send one ``toolCall``; the session owes answers to its calls until they come
        (on this connection or, re-issued, a later one). Returns their waiters."""
        assert self.session is not None
        loop = asyncio.get_running_loop()
        waiters = []
        for call in calls:
            self.session.unanswered[call["id"]] = call
            waiters.append(self._tool_waiters.setdefault(call["id"], loop.create_future()))
        message: dict[str, Any] = {"toolCall": {"functionCalls": calls}}
        if with_go_away and not self._go_away_sent:  # both fields of one server message
            self._go_away_sent = True
            message["goAway"] = {"timeLeft": proto_duration(self.knobs.notice)}
        await self._send(message)
        return waiters

    def _pending_calls(self) -> list[str]:
        """Names of the calls on this connection still awaiting their answer."""
        assert self.session is not None
        unanswered = self.session.unanswered
        return [unanswered[i]["name"] for i, w in self._tool_waiters.items() if not w.done() and i in unanswered]

    async def _toolcall_fault(self) -> None:
        """``toolcall_then``: the fault right after the emulator's first toolCall."""
        kind = self.knobs.toolcall_then
        if not kind or self.emu.toolcall_fault_fired:
            return
        self.emu.toolcall_fault_fired = True
        log.info("emulator: toolCall then %s on connection %d", kind, self.record.number)
        if kind in ("goaway", "goaway_same"):
            await self._go_away()  # already sent with the toolCall for goaway_same
            self._tasks.append(asyncio.create_task(self._close_after(self.knobs.notice, "goAway after a toolCall")))
        elif kind == "1011":
            await self._close(1011, "Internal error encountered.", "toolCall then 1011")
        else:
            self.record.close_code, self.record.close_detail = 1006, "toolCall then TCP drop"
            self.ws.transport.abort()

    async def _close_after(self, seconds: float, detail: str) -> None:
        await asyncio.sleep(seconds)
        await self._close(1000, "", detail)

    async def _idle_reaper(self) -> None:
        """``idle_reap``: a middlebox dropping a connection that looks idle (no close frame)."""
        while True:
            quiet = time.monotonic() - self._last_client_at
            if quiet >= self.knobs.idle_reap:
                self.record.close_code, self.record.close_detail = 1006, f"idle for {quiet:.1f} s: reaped"
                log.info("emulator reaps idle connection %d", self.record.number)
                self.ws.transport.abort()
                return
            await asyncio.sleep(self.knobs.idle_reap - quiet)

    # ---- timers and faults ---------------------------------------------------------------

    async def _lifetime(self) -> None:
        session = self.session
        assert session is not None
        await asyncio.sleep(self.knobs.lifetime)
        await self._go_away()
        await asyncio.sleep(self.knobs.notice)
        await self._close(1000, "", "connection lifetime over")

    async def _go_away(self) -> None:
        if not self._go_away_sent:
            self._go_away_sent = True
            await self._send({"goAway": {"timeLeft": proto_duration(self.knobs.notice)}})

    async def _fault(self, fault: Fault) -> None:
        await asyncio.sleep(fault.at)
        log.info("emulator fault %s on connection %d", fault.kind, self.record.number)
        if fault.kind == "close1011":
            await self._close(1011, "Internal error encountered.", "injected fault")
        elif fault.kind == "quota":
            await self._close(
                1011,
                "You exceeded your current quota, please check your plan and billing details. For more "
                "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
                "injected quota fault",
            )
        elif fault.kind == "drop":
            self.record.close_code, self.record.close_detail = 1006, "injected TCP drop"
            self.ws.transport.abort()
        elif fault.kind == "stall":
            self._stalled = True
            self.record.close_detail = "stalled"
            self.ws.transport.pause_reading()
        elif fault.kind == "goaway":
            await self._go_away()
            await asyncio.sleep(self.knobs.notice)
            await self._close(1000, "", "goAway fault: notice over")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def serve_emulator(host: str, port: int, knobs: EmulatorKnobs) -> None:
    """Run the emulator on ``host:port`` until cancelled (``vision-stream emulate``)."""
    async with LiveEmulator(knobs, host=host, port=port) as emulator:
        log.info("Gemini Live emulator listening on %s", emulator.url)
        await asyncio.Event().wait()


def _peer(ws: ServerConnection) -> str:
    """``host:port`` of the client, for the log."""
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) and len(address) >= 2 else "?"
