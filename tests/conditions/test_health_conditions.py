"""Health thresholds over gRPC (the proto has no health field): ``health.*`` WatchConditions.

``health.no_frames`` ``after=1`` on a Watch of a loopback MJPEG camera: the camera hangs up,
no_frames fires after about 1 s (not the default 10), resolves when it streams again; the
settings are listed back by ListSessions and never reach the model as a condition to judge;
a malformed one is INVALID_ARGUMENT naming it and the form; SetConditions changes them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from helpers.cameras import MjpegServer, generated_mjpeg
from helpers.watching import Client, Follower, serve_cameras

from vision_stream.conditions.model import Condition, HealthSettings, check_conditions, health_with, split_health
from vision_stream.errors import InvalidInputError
from vision_stream.v1 import vision_stream_pb2 as pb

FIRED, RESOLVED = pb.Alert.STATE_FIRED, pb.Alert.STATE_RESOLVED


@pytest.fixture
def camera() -> Iterator[MjpegServer]:
    server = MjpegServer(generated_mjpeg(), fps=10)
    yield server
    server.close()


def alert(condition_id: str, state: int = FIRED) -> object:
    return lambda e: e.HasField("alert") and e.alert.condition_id == condition_id and e.alert.state == state


def test_the_health_forms() -> None:
    specs = [Condition(id="health.no_frames", text="after=2.5"), Condition(id="health.fps_range", text="min=5 max=30"),
             Condition(id="health.backend_down", text="off"), Condition(id="door", text="a person at the door")]
    judged, health = split_health(check_conditions(specs))
    assert [c.id for c in judged] == ["door"]
    settings = health_with(None, health)
    assert settings == HealthSettings(enabled=True, no_frames_after=2.5, fps_min=5, fps_max=30, backend_down=False)
    base = HealthSettings(enabled=True, reconnecting_after=3)
    assert health_with(base, ()) is base and health_with(None, ()) is None
    assert health_with(base, health[:1]) == HealthSettings(enabled=True, no_frames_after=2.5, reconnecting_after=3)
    for spec, words in ((Condition(id="health.no_frames", text="soon"), "after=N"),
                        (Condition(id="health.fps", text="on"), "unknown health condition"),
                        (Condition(id="health.no_frames", text="after=-1"), ">= 0"),
                        (Condition(id="health.budget_exhausted", text="maybe"), "on or off"),
                        (Condition(id="health.fps_range", text="min=9 max=3"), "above")):
        with pytest.raises(InvalidInputError, match=words):
            health_with(None, check_conditions([spec]))


async def test_no_frames_after_one_second_through_watch(camera: MjpegServer) -> None:
    client: Client = await serve_cameras()
    try:
        conditions = [pb.WatchCondition(id="health.no_frames", text="after=1"),
                      pb.WatchCondition(id="moving", text="motion in the centre", cooldown_seconds=600)]
        config = pb.SessionConfig(session_id="w", backend="local", commentary_interval=5.0, conditions=conditions)
        watch = Follower(client.stub.Watch(pb.WatchRequest(source=camera.url(), config=config)))
        await watch.wait_for(lambda e: e.HasField("stats") or e.HasField("alert"), within=10)
        listed = await client.stub.ListSessions(pb.ListSessionsRequest())
        assert [(c.id, c.text) for c in listed.sessions[0].conditions] == [
            ("moving", "motion in the centre"), ("health.no_frames", "after=1")]
        camera.stopping.set()  # the camera hangs up
        stopped = time.monotonic()
        silent = await watch.wait_for(alert("no_frames"), within=10)
        assert time.monotonic() - stopped < 6, "the 1 s threshold, not the default 10 s"
        assert silent.alert.builtin and "no frames" in silent.alert.evidence
        camera.stopping.clear()
        back = await watch.wait_for(alert("no_frames", RESOLVED), within=15)
        assert back.seq > silent.seq
        # SetConditions turns it off (and keeps the judged one).
        answer = await client.stub.SetConditions(pb.SetConditionsRequest(session_id="w", conditions=[
            pb.WatchCondition(id="health.no_frames", text="off")]))
        assert [c.id for c in answer.conditions] == ["health.no_frames"]
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await client.stub.SetConditions(pb.SetConditionsRequest(session_id="w", conditions=[
                pb.WatchCondition(id="health.no_frames", text="after=soon")]))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "health.no_frames" in (bad.value.details() or "") and "not a number" in (bad.value.details() or "")
        assert not any(e.HasField("error") and "health." in e.error.message for e in watch.events), \
            "health settings never reach the backend as conditions to judge"
        await watch.cancel()
    finally:
        await client.close()


async def test_a_malformed_health_condition_is_refused_by_watch(camera: MjpegServer) -> None:
    client: Client = await serve_cameras()
    try:
        config = pb.SessionConfig(backend="local", conditions=[pb.WatchCondition(id="health.nope", text="on")])
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            async for _ in client.stub.Watch(pb.WatchRequest(source=camera.url(), config=config)):
                pass
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "health.no_frames" in (bad.value.details() or "")  # the known ones are named
    finally:
        await client.close()
