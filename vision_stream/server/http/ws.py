"""``GET /v1/stream``: the browser's ``Stream``, framed for a WebSocket.

Browser -> server: the first text message is a ``SessionConfig`` (JSON); then
binary messages, first byte ``0x01`` + JPEG bytes (a video frame, stamped with
its arrival time by the push source) or ``0x02`` + PCM16 LE mono 16 kHz (audio),
and text messages holding a ``StreamRequest`` (``{"prompt": {...}}``,
``{"toolResult": {...}}``). Server -> browser: one text message per event
(the ``Event`` JSON). A text message ``{"end": true}`` ends the input while the
events go on (gRPC's half-close, which a WebSocket lacks): the browser then
sees everything it sent processed, up to ``session_ended``; closing the socket
ends the input too, without the rest of the events. The messages become the same ``pb.StreamRequest`` (or
``BadMessage``) a gRPC ``Stream`` reads, and go through the same
``VisionStreamService.open_push``: the same limits, timeouts and errors.
The server holds the model session and the key; neither reaches the browser.

The socket ends like the gRPC call: 1000 after ``session_ended``, or the
close code for the error that ended the input (errors.close_for: 1007 bad
data, 1008 policy/limits, 1011 server trouble) with a reason of at most 123 bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from ...errors import VisionStreamError
from ...v1 import vision_stream_pb2 as pb
from ..auth import current_principal
from ..stream_input import BadMessage, transport_receive_limit
from .auth import http_client_key, needs
from .errors import as_ours, close_for
from .jsonio import event_json, parse_message
from .state import SERVICE

__all__ = ["AUDIO", "AUDIO_RATE", "FRAME", "stream"]

FRAME = 0x01
AUDIO = 0x02
AUDIO_RATE = 16000
# aiohttp answers pings and sends its own every HEARTBEAT s: a vanished browser is noticed.
HEARTBEAT = 30.0


def _text(data: str, first: bool) -> pb.StreamRequest | BadMessage:
    """A text message: the config (first), else a StreamRequest's JSON."""
    try:
        if first:
            return pb.StreamRequest(config=parse_message(data, pb.SessionConfig(), "config"))
        return parse_message(data, pb.StreamRequest(), "text message")
    except VisionStreamError as exc:
        return BadMessage(len(data), exc.message)


def _is_end(data: str) -> bool:
    """``{"end": true}``: the browser's end of input (checked before JSON parsing, cheaply)."""
    if len(data) > 64 or "end" not in data:
        return False
    try:
        return json.loads(data) == {"end": True}
    except ValueError:
        return False


def _binary(data: bytes) -> pb.StreamRequest | BadMessage:
    """A binary message: 0x01 + JPEG, or 0x02 + PCM16 LE mono 16 kHz."""
    kind, payload = (data[0], data[1:]) if data else (None, b"")
    if kind == FRAME:
        return pb.StreamRequest(frame=pb.VideoFrame(data=payload))
    if kind == AUDIO:
        return pb.StreamRequest(audio=pb.AudioChunk(pcm_s16le=payload, sample_rate=AUDIO_RATE, channels=1))
    shown = "nothing" if kind is None else f"0x{kind:02x}"
    return BadMessage(len(data), f"binary message starts with {shown}: 0x01 (JPEG frame) or 0x02 (PCM16 audio)")


async def _requests(ws: web.WebSocketResponse, max_bytes: int) -> AsyncIterator[pb.StreamRequest | BadMessage]:
    """The browser's messages as Stream requests; ends when the browser closes."""
    first = True
    async for message in ws:  # aiohttp ends the iteration on CLOSE/CLOSING/CLOSED
        size = len(message.data) if message.type in (WSMsgType.TEXT, WSMsgType.BINARY) else 0
        if size > max_bytes:
            yield BadMessage(size, f"{size} bytes is over the server's {max_bytes}-byte message limit",
                             oversize=True)
        elif message.type == WSMsgType.TEXT:
            if not first and _is_end(message.data):
                return
            yield _text(message.data, first)
        elif message.type == WSMsgType.BINARY:
            yield _binary(message.data)
        else:  # WSMsgType.ERROR: a protocol error aiohttp met (it closes the socket itself)
            yield BadMessage(0, f"WebSocket error: {type(ws.exception()).__name__}")
        first = False


async def _close(ws: web.WebSocketResponse, exc: VisionStreamError | None) -> None:
    code, reason = (1000, "session ended") if exc is None else close_for(exc)
    await ws.close(code=code, message=reason.encode())


@needs("Stream", query_token=True)
async def stream(request: web.Request) -> web.WebSocketResponse:
    service = request.app[SERVICE]
    max_bytes = service.config.limits.max_message_bytes
    # Messages a little over the limit reach _requests and are refused with their number
    # (as gRPC's RECEIVE_SLACK_BYTES does); beyond that aiohttp closes with 1009 itself.
    ws = web.WebSocketResponse(max_msg_size=transport_receive_limit(max_bytes), heartbeat=HEARTBEAT)
    await ws.prepare(request)
    try:
        call = await service.open_push(_requests(ws, max_bytes), http_client_key(request, current_principal()))
    except Exception as exc:
        await _close(ws, as_ours(exc, "WebSocket stream"))
        return ws
    error: VisionStreamError | None = None
    try:
        async for text in call.session.log.follow_encoded(event_json):
            await ws.send_str(text)
    except (ConnectionResetError, RuntimeError):
        pass  # the browser went away (aiohttp: "Cannot write to closing transport")
    except Exception as exc:  # this reader fell out of the retention window
        error = as_ours(exc, "WebSocket stream")
    finally:
        await call.close()
    if error is None:
        try:
            call.raise_input_error()
        except Exception as exc:  # the error that ended the browser's input
            error = as_ours(exc, "WebSocket stream")
    if not ws.closed:
        await _close(ws, error)
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/stream", stream)
