"""A 100-session flood from one client hits its limits (RESOURCE_EXHAUSTED with
RetryInfo) and leaves the server serving everyone else.

Half the flood's calls send only a config, half send nothing at all: both take a
slot from the moment the call starts. Per-client limits are counted per token
(principal); with authentication off every caller is anonymous and is counted per
IP address (see ``vision_stream.server.limits``), so the per-client part uses
tokens, and the global part runs without them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from helpers.paths import SAMPLES
from helpers.server import Served, bearer, serve, write_tokens
from helpers.timing import scaled

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.auth import load_tokens
from vision_stream.server.limits import ClientLimits
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb

CONFIG = pb.StreamRequest(config=pb.SessionConfig(backend="local", commentary_interval=60))
JPEG = (SAMPLES / "still.jpg").read_bytes()
FLOOD = 100


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    return root


def has_retry_info(err: grpc.aio.AioRpcError) -> bool:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info) and info.retry_delay.ToNanoseconds() > 0:
                    return True
    return False


async def flood(served: Served, metadata: tuple[tuple[str, str], ...] | None, hold: asyncio.Event,
                admitted: int) -> tuple[list[grpc.aio.StreamStreamCall], list[grpc.aio.AioRpcError]]:
    """Start FLOOD Streams (config only, or nothing); returns (still open, refused) once
    all but ``admitted`` have ended (or 5 s have passed), and 0.2 s more."""
    async def config_only() -> AsyncIterator[pb.StreamRequest]:
        yield CONFIG
        await hold.wait()

    async def nothing() -> AsyncIterator[pb.StreamRequest]:
        await hold.wait()
        yield CONFIG

    calls = [served.stub.Stream(config_only() if i % 2 else nothing(), metadata=metadata) for i in range(FLOOD)]
    pending = {asyncio.ensure_future(c.code()) for c in calls}
    deadline = asyncio.get_running_loop().time() + 5.0
    while len(pending) > admitted and asyncio.get_running_loop().time() < deadline:
        _, pending = await asyncio.wait(pending, timeout=0.1)
    await asyncio.sleep(0.2)  # none of the admitted ones ends by itself
    for waiter in pending:
        waiter.cancel()
    refused, open_calls = [], []
    for call in calls:
        if call.done():
            try:
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as err:
                refused.append(err)
        else:
            open_calls.append(call)
    return open_calls, refused


async def push_three_frames(served: Served, metadata: tuple[tuple[str, str], ...] | None) -> pb.SessionEnded:
    async def requests() -> AsyncIterator[pb.StreamRequest]:
        yield CONFIG
        for i in range(3):
            yield pb.StreamRequest(frame=pb.VideoFrame(data=JPEG, media_time=float(i)))

    events = [e async for e in served.stub.Stream(requests(), metadata=metadata)]
    return events[-1].session_ended


async def test_flood_from_one_principal_leaves_another_able_to_work(media_root: Path, tmp_path: Path) -> None:
    tokens = write_tokens(tmp_path / "tokens.toml", {"flooder": ["push"], "worker": ["push"]})
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=32),
                           clients=ClientLimits(sessions_per_client=8))
    hold = asyncio.Event()
    async for served in serve(config, media_root, tokens=load_tokens(tmp_path / "tokens.toml")):
        open_calls, refused = await flood(served, bearer(tokens["flooder"]), hold, 8)
        try:
            assert len(open_calls) == 8 and len(refused) == FLOOD - 8
            assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert all("too many sessions for this client" in (e.details() or "") for e in refused)
            assert all(has_retry_info(e) for e in refused)
            # Another principal is served normally meanwhile.
            ended = await asyncio.wait_for(push_three_frames(served, bearer(tokens["worker"])), scaled(20))
            assert ended.reason == "end_of_input" and ended.totals.frames_in == 3
        finally:
            hold.set()
            for call in open_calls:
                call.cancel()


async def test_flood_hits_the_global_limit_with_retry_info(media_root: Path) -> None:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=10),
                           clients=ClientLimits(sessions_per_client=64))
    hold = asyncio.Event()
    async for served in serve(config, media_root):
        open_calls, refused = await flood(served, None, hold, 10)
        try:
            assert len(open_calls) == 10 and len(refused) == FLOOD - 10
            assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert all("the server runs at most 10" in (e.details() or "") for e in refused)
            assert all(has_retry_info(e) for e in refused)
        finally:
            hold.set()
            for call in open_calls:
                call.cancel()
        # Once the flood is gone, its slots are back.
        for _ in range(50):
            if served.running.service.clients.pending == 0 and served.running.registry.running_count() == 0:
                break
            await asyncio.sleep(0.1)
        ended = await asyncio.wait_for(push_three_frames(served, None), scaled(20))
        assert ended.totals.frames_in == 3
