"""Limits per client through a real server on loopback: idle and first-message
timeouts, session slots taken at call start, the message rate, RetryInfo, and
bounded error messages. Timeouts are short (0.5 s) so each test runs in about a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from helpers.paths import SAMPLES
from helpers.server import Served, serve
from helpers.timing import scaled

from vision_stream.config import Limits
from vision_stream.errors import UsageError, quote
from vision_stream.server.access import SourceAccess
from vision_stream.server.auth import ANONYMOUS, Principal
from vision_stream.server.limits import ClientLimits, client_key
from vision_stream.server.service import ServiceConfig
from vision_stream.server.status import MAX_STATUS_CHARS, bounded
from vision_stream.v1 import vision_stream_pb2 as pb

JPEG = (SAMPLES / "still.jpg").read_bytes()
CONFIG = pb.StreamRequest(config=pb.SessionConfig(backend="local", commentary_interval=60))
FRAME = pb.StreamRequest(frame=pb.VideoFrame(data=JPEG, media_time=0.0))
SHORT = ClientLimits(idle_timeout=0.5, first_message_timeout=0.5, sessions_per_client=2)


def retry_delay(err: grpc.aio.AioRpcError) -> float | None:
    """RetryInfo.retry_delay (seconds) from the google.rpc.Status in the trailers."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.ToNanoseconds() / 1e9
    return None


async def stream_until_error(served: Served, requests: AsyncIterator[pb.StreamRequest]
                             ) -> tuple[grpc.aio.AioRpcError, list[pb.Event]]:
    events: list[pb.Event] = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for event in served.stub.Stream(requests):
            events.append(event)
    return err.value, events


async def serve_limited(media_root: Path, clients: ClientLimits, max_sessions: int = 8) -> AsyncIterator[Served]:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=max_sessions),
                           clients=clients)
    async for served in serve(config, media_root):
        yield served


async def test_stream_without_media_for_idle_timeout_is_deadline_exceeded(media_root: Path) -> None:
    async def requests() -> AsyncIterator[pb.StreamRequest]:
        yield CONFIG
        yield FRAME
        yield pb.StreamRequest(prompt=pb.Prompt(text="still there?"))  # not media: no extension
        await asyncio.sleep(5)  # then silence, holding the call open

    async for served in serve_limited(media_root, SHORT):
        began = time.monotonic()
        err, events = await stream_until_error(served, requests())
        assert time.monotonic() - began < 3
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "idle timeout" in (err.details() or "") and "message 3" in (err.details() or "")
        assert [e.error.code for e in events if e.HasField("error")] == ["input_timeout"]
        assert events[-1].session_ended.totals.frames_sent == 1  # the frame before was processed


async def test_silent_call_holds_a_slot_then_times_out(media_root: Path) -> None:
    """A call that never sends its config counts against the per-client limit from
    its start, and gives its slot back when its first-message timeout ends it."""
    async def silent() -> AsyncIterator[pb.StreamRequest]:
        await asyncio.sleep(5)
        yield CONFIG

    async for served in serve_limited(media_root, SHORT):
        silent_calls = [asyncio.create_task(stream_until_error(served, silent())) for _ in range(2)]
        await asyncio.sleep(0.2)  # both calls have started (and hold the client's 2 slots)

        async def refused_call() -> AsyncIterator[pb.StreamRequest]:
            yield CONFIG
            # The refusal comes at once; writing meanwhile would race it, and the
            # aio client then reports INTERNAL "Internal error from Core"
            # instead of the server's status (grpc/grpc#36066).
            await asyncio.sleep(3)
            yield FRAME

        async def one_frame() -> AsyncIterator[pb.StreamRequest]:
            yield CONFIG
            yield FRAME

        refused, _ = await stream_until_error(served, refused_call())
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many sessions for this client" in (refused.details() or "")
        assert retry_delay(refused) == pytest.approx(1.0)
        for task in silent_calls:
            err, events = await asyncio.wait_for(task, scaled(3))
            assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "no config within 0.5 s" in err.details()
            assert events == []
        # The slots are back: the same client works again.
        events = [e async for e in served.stub.Stream(one_frame())]
        assert events[-1].session_ended.totals.frames_in == 1


async def test_slots_are_given_back_when_sessions_end(media_root: Path) -> None:
    async def one_frame() -> AsyncIterator[pb.StreamRequest]:
        yield CONFIG
        yield FRAME

    async for served in serve_limited(media_root, SHORT):
        for _ in range(5):  # more sessions in a row than the client's 2 slots
            events = [e async for e in served.stub.Stream(one_frame())]
            assert events[-1].HasField("session_ended")
        assert served.running.service.clients.held(client_key(ANONYMOUS, "ipv4:127.0.0.1:1")) == 0


async def test_message_rate_is_resource_exhausted_with_retry_info(media_root: Path) -> None:
    async def chatty() -> AsyncIterator[pb.StreamRequest]:
        yield CONFIG
        yield FRAME
        for _ in range(4):  # message 6 is one over the burst of 5
            yield pb.StreamRequest(prompt=pb.Prompt(text="and now?"))
        # Then wait for the server to end the call (the call's end cancels this):
        # a write racing the server's status makes grpc.aio's client report
        # INTERNAL "Internal error from Core" instead of it (grpc#36066).
        await asyncio.sleep(10)

    async for served in serve_limited(media_root, ClientLimits(message_rate=2, message_burst=5)):
        err, events = await stream_until_error(served, chatty())
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "message 6: message rate exceeded" in (err.details() or "")
        delay = retry_delay(err)
        assert delay is not None and 0 < delay <= 0.5
        assert [e.error.code for e in events if e.HasField("error")] == ["rate_limited"]
        assert events[-1].session_ended.totals.frames_in == 1


async def test_error_messages_are_bounded(served: Served) -> None:
    huge = "x" * 500_000
    for config in (pb.SessionConfig(backend=huge), pb.SessionConfig(session_id=huge),
                   pb.SessionConfig(functions=[pb.FunctionDeclaration(name=huge)])):
        async def requests(config: pb.SessionConfig = config) -> AsyncIterator[pb.StreamRequest]:
            yield pb.StreamRequest(config=config)

        err, _ = await stream_until_error(served, requests())
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(err.details() or "") < 300 and "500000 characters" in (err.details() or "")


def test_quote_and_bounded() -> None:
    assert quote("abc") == "'abc'"
    assert quote("y" * 1000).endswith("... (1000 characters)") and len(quote("y" * 1000)) < 120
    assert len(bounded("z" * 100_000)) == MAX_STATUS_CHARS
    emoji = bounded("\N{GRINNING FACE}" * 17_500)  # 4 UTF-8 bytes each: bounded in bytes, not characters
    assert len(emoji.encode()) <= MAX_STATUS_CHARS and emoji.endswith("(truncated)")


def test_client_key_uses_principal_or_peer_address() -> None:
    assert client_key(Principal("cam-ops", frozenset({"push"})), "ipv4:10.0.0.1:5000") == "cam-ops"
    assert client_key(ANONYMOUS, "ipv4:10.0.0.1:5000") == client_key(ANONYMOUS, "ipv4:10.0.0.1:6000")
    assert client_key(ANONYMOUS, "ipv6:[::1]:5000") == "anonymous@::1"


@pytest.mark.parametrize("bad", [{"sessions_per_client": 0}, {"idle_timeout": 0}, {"idle_timeout": float("nan")},
                                 {"first_message_timeout": -1}, {"message_rate": 0}, {"message_burst": 0}])
def test_client_limits_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        ClientLimits(**bad)  # type: ignore[arg-type]
