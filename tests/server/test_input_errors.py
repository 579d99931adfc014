"""Nothing a client sends is lost silently: every input failure ends the call with a
status naming the message, leaves an ``error`` event in the session's log, and what
was accepted before it is still processed. Real server on loopback, raw wire bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from helpers.paths import SAMPLES
from helpers.server import Served, serve

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.auth import ANONYMOUS
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb

JPEG = (SAMPLES / "still.jpg").read_bytes()
CONFIG = pb.StreamRequest(config=pb.SessionConfig(backend="local", commentary_interval=60))
STREAM = "/vision_stream.v1.VisionStream/Stream"


def frame(t: float) -> bytes:
    return pb.StreamRequest(frame=pb.VideoFrame(data=JPEG, media_time=t)).SerializeToString()


async def raw_stream(served: Served, *messages: bytes) -> tuple[grpc.StatusCode, str, list[pb.Event]]:
    """A Stream call sending ``messages`` as they are (a custom request serializer)."""
    call_factory = served.channel.stream_stream(STREAM, request_serializer=lambda b: b,
                                                response_deserializer=pb.Event.FromString)

    async def requests() -> AsyncIterator[bytes]:
        for m in messages:
            yield m

    call = call_factory(requests())
    events: list[pb.Event] = []
    try:
        async for event in call:
            events.append(event)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or "", events
    return await call.code(), await call.details() or "", events


async def logged(served: Served, session_id: str) -> list[pb.Event]:
    """The session's log as a later Subscribe sees it."""
    return [e async for e in served.stub.Subscribe(pb.SubscribeRequest(session_id=session_id))]


def errors(events: list[pb.Event]) -> list[pb.Error]:
    return [e.error for e in events if e.HasField("error")]


async def assert_failed_after_two_frames(served: Served, messages: list[bytes], code: grpc.StatusCode,
                                         needle: str) -> None:
    got, details, events = await raw_stream(served, CONFIG.SerializeToString(), frame(0.0), frame(1.0), *messages)
    assert got == code, (got, details)
    assert "message 4" in details and needle in details, details
    # The error is in the session's log, for the caller and for any later subscriber.
    assert [e.message for e in errors(events)] == [details]
    log = await logged(served, events[0].session_id)
    assert [e.message for e in errors(log)] == [details]
    # The two frames accepted before the bad message were processed to the end.
    assert events[-1].HasField("session_ended") and events[-1].session_ended.totals.frames_in == 2
    assert log[-1].session_ended.totals.frames_sent >= 1


async def test_corrupt_protobuf_message_is_invalid_argument_naming_it(served: Served) -> None:
    await assert_failed_after_two_frames(served, [b"\xff\xff\xff\xff", frame(2.0)],
                                         grpc.StatusCode.INVALID_ARGUMENT, "not a valid StreamRequest")


async def test_over_nested_tool_result_json_is_invalid_argument(served: Served) -> None:
    nested = pb.StreamRequest(tool_result=pb.ToolResult(call_id="c1", name="f", response_json="[" * 100_000))
    await assert_failed_after_two_frames(served, [nested.SerializeToString()],
                                         grpc.StatusCode.INVALID_ARGUMENT, "nested too deeply")


async def test_bad_json_error_is_bounded(served: Served) -> None:
    bad = pb.StreamRequest(tool_result=pb.ToolResult(call_id="c1", response_json="{" + "x" * 200_000))
    await assert_failed_after_two_frames(served, [bad.SerializeToString()],
                                         grpc.StatusCode.INVALID_ARGUMENT, "is not JSON")


async def test_oversize_message_is_resource_exhausted_naming_it(media_root: Path) -> None:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_message_bytes=200_000))
    big = pb.StreamRequest(frame=pb.VideoFrame(data=b"\xff" * 300_000)).SerializeToString()
    async for served in serve(config, media_root):
        await assert_failed_after_two_frames(served, [big], grpc.StatusCode.RESOURCE_EXHAUSTED,
                                             "200000-byte message limit")
        # The server goes on serving.
        code, _, events = await raw_stream(served, CONFIG.SerializeToString(), frame(0.0))
        assert code == grpc.StatusCode.OK and events[-1].session_ended.totals.frames_in == 1


@pytest.mark.parametrize(
    ("first", "needle"),
    [(b"\x0a\xff\xff", "message 1: not a valid StreamRequest"),
     (pb.StreamRequest(prompt=pb.Prompt(text="hi")).SerializeToString(), "message 1: the first Stream message")],
)
async def test_bad_first_message(served: Served, first: bytes, needle: str) -> None:
    code, details, events = await raw_stream(served, first, frame(0.0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and needle in details and events == []


async def test_slow_reader_of_its_own_stream_gets_out_of_range(media_root: Path) -> None:
    """The client reads nothing until its session has ended; with a one-byte HTTP/2
    window (lookahead) the server's sends block, its cursor falls out of a 3-event
    retention window, and the call ends OUT_OF_RANGE, as Subscribe would."""
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(event_retention=3))
    async for served in serve(config, media_root):
        slow = grpc.aio.insecure_channel(f"127.0.0.1:{served.running.port}", options=[
            ("grpc.http2.lookahead_bytes", 1), ("grpc.http2.bdp_probe", 0)])
        try:
            call = slow.stream_stream(STREAM, request_serializer=lambda b: b,
                                      response_deserializer=pb.Event.FromString)

            async def requests() -> AsyncIterator[bytes]:
                yield pb.StreamRequest(config=pb.SessionConfig(backend="local", commentary_interval=0.5,
                                                               lossless=True)).SerializeToString()
                for i in range(40):
                    yield frame(i * 0.25)

            stream = call(requests())
            first = await anext(aiter(stream))
            session = served.running.registry.get(first.session_id, principal=ANONYMOUS)
            await session.wait()  # everything was produced while the client read nothing
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stream:
                    pass
            assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE, err.value.details()
            assert "no longer retained" in (err.value.details() or "")
        finally:
            await slow.close()
