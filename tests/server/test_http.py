"""The HTTP side (vision_stream/server/http) over a real server on loopback: real HTTP
(httpx), real SSE, real WebSockets (aiohttp's client), real media decoded by PyAV.

JSON answers are parsed back into the protobuf messages with json_format: one schema,
two transports. The offline backend (``local``) answers, so no key is needed.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import av
import cv2
import httpx
import numpy as np
import pytest
from helpers.http import SseEvent, as_json, as_message, base_url, sse_events, ws_url
from helpers.paths import SAMPLES
from helpers.rest import API_KEY
from helpers.server import Served, serve, write_tokens
from helpers.timing import scaled, until

from vision_stream.backends.factory import BackendOptions
from vision_stream.config import Limits
from vision_stream.redact import Secret
from vision_stream.server.access import SourceAccess
from vision_stream.server.auth import ANONYMOUS, load_tokens
from vision_stream.server.http.errors import CLOSE_REASON_BYTES
from vision_stream.server.service import ServiceConfig
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.v1 import vision_stream_pb2 as pb

FAST = pb.SessionConfig(commentary_interval=4, backend="local")
TIMEOUT = httpx.Timeout(scaled(10.0))


def _config(media_root: Path, **options: object) -> ServiceConfig:
    return ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8),
                         **options)  # type: ignore[arg-type]


@pytest.fixture
async def web(media_root: Path) -> AsyncIterator[Served]:
    async for s in serve(_config(media_root), media_root, http_port=0):
        yield s


@pytest.fixture
async def http(web: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url(web), timeout=TIMEOUT) as client:
        yield client


def _error(response: httpx.Response, code: int, status: str) -> str:
    assert response.status_code == code, response.text
    body = response.json()["error"]
    assert body["code"] == code and body["status"] == status, body
    assert 0 < len(body["message"].encode()) <= 1024
    return str(body["message"])


async def _watch(http: httpx.AsyncClient, **fields: object) -> pb.SessionInfo:
    request = pb.WatchRequest(source="sample.mp4", config=FAST, **fields)  # type: ignore[arg-type]
    response = await http.post("/v1/sessions", content=as_json(request))
    assert response.status_code == 201, response.text
    info = as_message(response.text, pb.SessionInfo())
    assert response.headers["Location"] == f"/v1/sessions/{info.session_id}"
    return info


async def _sse(http: httpx.AsyncClient, session_id: str, *, headers: dict[str, str] | None = None,
               limit: int | None = None, params: dict[str, str] | None = None) -> list[SseEvent]:
    """The session's SSE events until the stream ends (or ``limit`` events)."""
    got: list[SseEvent] = []
    async with http.stream("GET", f"/v1/sessions/{session_id}/events", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for item in sse_events(response):
            if isinstance(item, SseEvent):
                got.append(item)
                if limit is not None and len(got) >= limit:
                    break
    return got


def _events(items: list[SseEvent]) -> list[pb.Event]:
    events = [as_message(item.data, pb.Event()) for item in items]
    for item, event in zip(items, events, strict=True):
        assert item.id == str(event.seq) and item.event == event.WhichOneof("payload")
    return events


# ------------------------------------------------------------------ unary routes

async def test_sessions_list_get_post_delete_round_trip_through_json(web: Served, http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).text == "ok"
    info = await _watch(http, loop=True)
    assert info.backend == "local" and info.source == "sample.mp4"
    listed = as_message((await http.get("/v1/sessions")).text, pb.ListSessionsResponse())
    assert [s.session_id for s in listed.sessions] == [info.session_id]
    got = as_message((await http.get(f"/v1/sessions/{info.session_id}")).text, pb.SessionInfo())
    assert got.session_id == info.session_id and got.state in ("starting", "running")
    # The same session over gRPC: one registry, two transports.
    grpc_list = await web.stub.ListSessions(pb.ListSessionsRequest())
    assert [s.session_id for s in grpc_list.sessions] == [info.session_id]
    stopped = as_message((await http.delete(f"/v1/sessions/{info.session_id}")).text, pb.StopSessionResponse())
    assert stopped.session.session_id == info.session_id and stopped.session.state in ("ended", "ending")
    _error(await http.get("/v1/sessions/nope"), 404, "NOT_FOUND")
    _error(await http.delete("/v1/sessions/nope"), 404, "NOT_FOUND")


async def test_bad_bodies_are_400_with_the_problem(http: httpx.AsyncClient) -> None:
    message = _error(await http.post("/v1/sessions", content=b'{"source": 3, "bogus": 1}'), 400, "INVALID_ARGUMENT")
    assert "WatchRequest" in message
    _error(await http.post("/v1/sessions", content=b""), 400, "INVALID_ARGUMENT")
    _error(await http.post("/v1/sessions", content=b"\xff\xfe"), 400, "INVALID_ARGUMENT")
    missing = await http.post("/v1/sessions", content=as_json(pb.WatchRequest(source="nothing.mp4", config=FAST)))
    assert missing.status_code in (400, 404, 409), missing.text
    _error(await http.get("/v1/nothing"), 404, "NOT_FOUND")
    _error(await http.get("/v1/sessions/x/frames/abc"), 404, "NOT_FOUND")  # the session is checked first


async def test_snapshot_analyze(http: httpx.AsyncClient) -> None:
    request = pb.SnapshotRequest(image=pb.VideoFrame(data=(SAMPLES / "still.jpg").read_bytes()),
                                 prompt="What is in the picture?")
    response = await http.post("/v1/snapshots:analyze", content=as_json(request))
    assert response.status_code == 200, response.text
    reply = as_message(response.text, pb.SnapshotResponse())
    assert reply.backend == "local" and len(reply.text) > 20
    bad = pb.SnapshotRequest(image=pb.VideoFrame(data=b"not an image"))
    _error(await http.post("/v1/snapshots:analyze", content=as_json(bad)), 400, "INVALID_ARGUMENT")


async def test_oversize_body_is_413(media_root: Path) -> None:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_message_bytes=64 * 1024))
    async for served in serve(config, media_root, http_port=0):
        async with httpx.AsyncClient(base_url=base_url(served), timeout=TIMEOUT) as client:
            body = as_json(pb.SnapshotRequest(image=pb.VideoFrame(data=bytes(400 * 1024))))
            _error(await client.post("/v1/snapshots:analyze", content=body), 413, "RESOURCE_EXHAUSTED")


# ------------------------------------------------------------------------- SSE

async def test_sse_streams_a_watch_session_and_resumes_with_last_event_id(http: httpx.AsyncClient) -> None:
    info = await _watch(http, fast=True)
    first = await _sse(http, info.session_id, limit=5)
    assert [e.id for e in first] == ["1", "2", "3", "4", "5"] and first[0].event == "session_started"
    rest = await _sse(http, info.session_id, headers={"Last-Event-ID": first[-1].id or ""})
    events = _events(first + rest)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # no gap, no duplicate
    kinds = [e.WhichOneof("payload") for e in events]
    assert "commentary" in kinds and "detection" in kinds and kinds[-1] == "session_ended"
    # ?after= resumes the same way (curl), and a resume past the end is OUT_OF_RANGE (416).
    tail = await _sse(http, info.session_id, params={"after": str(len(events) - 1)})
    assert [e.id for e in tail] == [str(len(events))]
    _error(await http.get(f"/v1/sessions/{info.session_id}/events", params={"after": "99999"}), 416, "OUT_OF_RANGE")
    _error(await http.get(f"/v1/sessions/{info.session_id}/events", headers={"Last-Event-ID": "x"}), 400,
           "INVALID_ARGUMENT")


# ---------------------------------------------------------------------- frames

async def test_frames_latest_is_the_jpeg_the_model_saw(web: Served, http: httpx.AsyncClient) -> None:
    info = await _watch(http, loop=True)
    session = web.running.registry.get(info.session_id, principal=ANONYMOUS)
    await until(lambda: len(session.frames) >= 2, within=10, what="two sampled frames")
    response = await http.get(f"/v1/sessions/{info.session_id}/frames/latest")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    frame_id = int(response.headers["X-Frame-Id"])
    kept = session.frames.get(frame_id)
    assert kept is not None and kept.jpeg == response.content
    with av.open(io.BytesIO(response.content), format="mjpeg") as container:
        picture = next(container.decode(video=0))
    assert (picture.width, picture.height) == (kept.width, kept.height) and picture.width > 0
    by_id = await http.get(f"/v1/sessions/{info.session_id}/frames/{frame_id}")
    assert by_id.status_code == 200 and by_id.content == response.content
    _error(await http.get(f"/v1/sessions/{info.session_id}/frames/0"), 404, "NOT_FOUND")
    _error(await http.get(f"/v1/sessions/{info.session_id}/frames/-1"), 400, "INVALID_ARGUMENT")
    await http.delete(f"/v1/sessions/{info.session_id}")


# ------------------------------------------------------------------- WebSocket

def _jpegs(clip: Path, count: int) -> list[bytes]:
    """``count`` frames of a real clip, decoded by PyAV and encoded as JPEG (what a browser sends)."""
    out: list[bytes] = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            ok, jpg = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"))
            assert ok
            out.append(jpg.tobytes())
            if len(out) == count:
                break
    return out


def _pcm(seconds: float) -> bytes:
    tone = np.sin(np.arange(int(16000 * seconds)) * 2 * np.pi * 440 / 16000) * 8000
    return tone.astype("<i2").tobytes()


async def _until_close(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[pb.Event], int, str]:
    """Every event the server sends, then its close code and reason."""
    events: list[pb.Event] = []
    while True:
        message = await asyncio.wait_for(ws.receive(), scaled(15))
        if message.type != aiohttp.WSMsgType.TEXT:
            assert message.type == aiohttp.WSMsgType.CLOSE, message
            return events, int(message.data), str(message.extra)
        events.append(as_message(message.data, pb.Event()))


async def _send(ws: aiohttp.ClientWebSocketResponse, messages: list[str | bytes]) -> None:
    for message in messages:
        await (ws.send_str(message) if isinstance(message, str) else ws.send_bytes(message))


async def test_websocket_stream_of_jpegs_and_pcm_gives_events_and_session_ended(web: Served, clip: Path) -> None:
    config = pb.SessionConfig(commentary_interval=1, backend="local", lossless=True)
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(web)) as ws:
        await ws.send_str(as_json(config))
        for jpeg in _jpegs(clip, 30):  # 3 s at 10 fps, a hard cut at 2 s
            await ws.send_bytes(b"\x01" + jpeg)
            await ws.send_bytes(b"\x02" + _pcm(0.1))
        await ws.send_str('{"prompt": {"text": "What is moving?"}}')
        await ws.send_str('{"end": true}')  # gRPC's half-close: the input ends, the events go on
        events, code, reason = await _until_close(ws)
    assert code == 1000, reason
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "session_started" and kinds[-1] == "session_ended", kinds
    assert "commentary" in kinds and "detection" in kinds, kinds
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    totals = events[-1].session_ended.totals
    assert totals.frames_in == 30 and totals.frames_dropped == 0 and totals.audio_chunks_sent > 0


async def test_websocket_bad_message_ends_the_input_after_what_was_sent(web: Served, clip: Path) -> None:
    config = pb.SessionConfig(commentary_interval=1, backend="local", lossless=True)
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(web)) as ws:
        await ws.send_str(as_json(config))
        await _send(ws, [b"\x01" + jpeg for jpeg in _jpegs(clip, 10)] + [b"\x09oops"])
        events, code, reason = await _until_close(ws)
    assert code == 1007 and "message 12" in reason and "0x09" in reason, reason
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[-1] == "session_ended" and events[-1].session_ended.totals.frames_in == 10
    assert any("0x09" in e.error.message for e in events if e.WhichOneof("payload") == "error")


@pytest.mark.parametrize(("messages", "code", "named"), [
    ([b"\x01abc"], 1007, "config"),  # binary before the config
    (['{"sessionId": 5, "nope": true}'], 1007, "SessionConfig"),
    (['{"backend": "local"}', b""], 1007, "nothing"),
    (['{"backend": "local"}', '{"config": {}}'], 1007, "config"),
    (['{"backend": "local"}', b"\x01" + b"not a jpeg"], 1007, "frame"),
    (['{"backend": "nope"}'], 1007, "backend"),
])
async def test_websocket_bad_input_closes_with_code_and_bounded_reason(
        web: Served, messages: list[str | bytes], code: int, named: str) -> None:
    async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(web)) as ws:
        await _send(ws, messages)
        _events, got, reason = await _until_close(ws)
    assert got == code and named in reason, (got, reason)
    assert len(reason.encode()) <= CLOSE_REASON_BYTES


async def test_websocket_oversize_message_is_1008(media_root: Path) -> None:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_message_bytes=64 * 1024))
    async for served in serve(config, media_root, http_port=0):
        async with aiohttp.ClientSession() as client, client.ws_connect(ws_url(served)) as ws:
            await ws.send_str(as_json(FAST))
            await ws.send_bytes(b"\x01" + bytes(100 * 1024))
            _events, code, reason = await _until_close(ws)
            assert code == 1008 and "limit" in reason, reason


# ----------------------------------------------------------------------- tokens

async def test_tokens_required_and_access_token_only_for_sse_and_ws(
        media_root: Path, tmp_path: Path, clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    tokens = write_tokens(tmp_path / "tokens.toml", {"alice": ["watch", "subscribe", "push", "manage"],
                                                     "viewer": ["subscribe"]})
    table = load_tokens(tmp_path / "tokens.toml")
    async for served in serve(_config(media_root), media_root, http_port=0, tokens=table):
        alice = {"Authorization": f"Bearer {tokens['alice']}"}
        async with httpx.AsyncClient(base_url=base_url(served), timeout=TIMEOUT) as http:
            _error(await http.get("/v1/sessions"), 401, "UNAUTHENTICATED")
            _error(await http.get("/v1/sessions", headers={"Authorization": "Bearer wrong"}), 401,
                   "UNAUTHENTICATED")
            # ?access_token= is for EventSource and WebSocket only.
            _error(await http.get("/v1/sessions", params={"access_token": tokens["alice"]}), 401, "UNAUTHENTICATED")
            viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
            denied = _error(await http.post("/v1/sessions", headers=viewer, content=as_json(
                pb.WatchRequest(source="sample.mp4", config=FAST))), 403, "PERMISSION_DENIED")
            assert "watch" in denied
            _error(await http.post("/v1/live-tokens", headers=viewer), 403, "PERMISSION_DENIED")
            # The page and health need no token.
            assert (await http.get("/healthz")).status_code == 200
            http.headers.update(alice)
            info = await _watch(http, fast=True)
            del http.headers["Authorization"]
            sse = await _sse(http, info.session_id, params={"access_token": tokens["alice"]})
            assert sse[-1].event == "session_ended"
            _error(await http.get(f"/v1/sessions/{info.session_id}/events"), 401, "UNAUTHENTICATED")
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(ws_url(served))
            assert refused.value.status == 401
            async with client.ws_connect(ws_url(served) + f"?access_token={tokens['alice']}") as ws:
                await ws.send_str(as_json(pb.SessionConfig(backend="local", lossless=True)))
                await ws.send_bytes(b"\x01" + _jpegs(clip, 1)[0])
                await ws.close()
    # The server's own log lines (the test's httpx client logs its URLs itself).
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "access_token=***" in logged
    for token in tokens.values():
        assert token not in logged


# ------------------------------------------------------------------ live tokens

async def test_live_tokens_503_without_a_key(http: httpx.AsyncClient) -> None:
    message = _error(await http.post("/v1/live-tokens"), 503, "UNAVAILABLE")
    assert "key" in message


async def test_live_tokens_minted_by_the_rest_emulator(media_root: Path, rest_emulator: RestEmulator) -> None:
    if not hasattr(rest_emulator, "tokens"):
        pytest.skip("the REST emulator has no /v1alpha/auth_tokens yet")
    options = BackendOptions(api_key=Secret(API_KEY), rest_url=rest_emulator.url)
    async for served in serve(_config(media_root, backends=options), media_root, http_port=0):
        async with httpx.AsyncClient(base_url=base_url(served), timeout=TIMEOUT) as http:
            response = await http.post("/v1/live-tokens")
        assert response.status_code == 201, response.text
        token = response.json()
        assert token["name"].startswith("auth_tokens/") and token["uses"] == 1
        assert API_KEY not in response.text
        minted = rest_emulator.tokens.tokens[token["name"]]
        assert minted.uses == 1 and minted.model and minted.model in token["model"]
