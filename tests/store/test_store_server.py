"""The store behind the gRPC service, in process: a configured camera keeps its run across
a server restart (graceful), a subscriber resumes with (run_id, after_seq) across it and
gets every event once, a stale run is an error naming both runs (or, with allow_gap, the
run from its beginning), and an ended session is listed and replayed after the restart.
Real gRPC on loopback, real media (samples/sample.mp4) through the offline backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from helpers.events import Collector
from helpers.paths import SAMPLES
from helpers.server import Served, serve
from helpers.timing import scaled

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.cameras import CameraConfig
from vision_stream.server.service import ServiceConfig
from vision_stream.store import SqliteStore
from vision_stream.v1 import vision_stream_pb2 as pb

CAMERA = CameraConfig(name="lobby", source=str(SAMPLES / "sample.mp4"), description="sample.mp4", loop=True,
                      backend="local")


async def _up(data: Path, media_root: Path) -> tuple[Served, AsyncIterator[Served]]:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=4),
                           store=SqliteStore(data))
    gen = serve(config, media_root, cameras=[CAMERA])
    return await gen.__anext__(), gen


async def _read(stub: object, request: pb.SubscribeRequest, until_seq: int) -> list[pb.Event]:
    got: list[pb.Event] = []
    async for event in stub.Subscribe(request):  # type: ignore[attr-defined]
        got.append(event)
        if event.seq >= until_seq:
            break
    return got


@pytest.mark.slow
async def test_restart_keeps_runs_and_replays_ended_sessions(tmp_path: Path, media_root: Path) -> None:
    data = tmp_path / "data"
    served, gen = await _up(data, media_root)
    try:
        live = Collector(served.stub.Subscribe(pb.SubscribeRequest(session_id="lobby")))
        await live.until(lambda: len(live.events) >= 3, within=10.0, what="the camera's first events")
        await live.cancel()
        clip = [e async for e in served.stub.Watch(pb.WatchRequest(
            source="sample.mp4", fast=True, config=pb.SessionConfig(session_id="clip", backend="local")))]
        assert clip[-1].HasField("session_ended")
    finally:
        await gen.aclose()  # graceful: the camera ends with session_ended("shutdown"), the store flushes
    run = live.events[0].run_id
    assert run and {e.run_id for e in live.events} == {run}

    served, gen = await _up(data, media_root)
    try:
        infos = {i.session_id: i for i in (await served.stub.ListSessions(pb.ListSessionsRequest())).sessions}
        assert infos["clip"].state == "ended" and infos["clip"].last_seq == clip[-1].seq
        assert infos["lobby"].run_id == run  # the camera continued its run
        # Resume from the first process's third event: the rest of run 1 (from the store), its
        # session_ended, then this process's events: gap-free, each once, one run_id.
        later = await _until_new_process(served, run)
        assert [e.seq for e in later] == list(range(4, later[-1].seq + 1))
        assert {e.run_id for e in later} == {run}
        kinds = [e.WhichOneof("payload") for e in later]
        assert "session_ended" in kinds and kinds.index("session_started") > kinds.index("session_ended")

        # A position of a run the session does not have: FAILED_PRECONDITION naming both runs.
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await _read(served.stub, pb.SubscribeRequest(session_id="lobby", after_seq=2, run_id="0ld0run"), 10)
        assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "0ld0run" in (stale.value.details() or "") and run in (stale.value.details() or "")
        gap = await _read(served.stub, pb.SubscribeRequest(session_id="lobby", after_seq=2, run_id="0ld0run",
                                                           allow_gap=True), until_seq=1)
        assert gap[0].seq == 1 and gap[0].run_id == run

        # The ended session, from the store only: every event, then the stream ends.
        replay = [e async for e in served.stub.Subscribe(pb.SubscribeRequest(session_id="clip"))]
        assert [e.SerializeToString() for e in replay] == [e.SerializeToString() for e in clip]
        with pytest.raises(grpc.aio.AioRpcError) as ahead:
            await _read(served.stub, pb.SubscribeRequest(session_id="clip", after_seq=clip[-1].seq + 5), 10)
        assert ahead.value.code() == grpc.StatusCode.OUT_OF_RANGE
    finally:
        await gen.aclose()


async def _until_new_process(served: Served, run: str) -> list[pb.Event]:
    """Subscribe after seq 3 of ``run`` until this process's session_started and one more event."""
    got: list[pb.Event] = []
    started = False
    stream = served.stub.Subscribe(pb.SubscribeRequest(session_id="lobby", after_seq=3, run_id=run),
                                   timeout=scaled(20.0))
    async for event in stream:
        got.append(event)
        if started:
            break
        started = event.HasField("session_started") and event.seq > 1
    stream.cancel()
    return got
