"""Conditions over real gRPC: SetConditions on a running Watch session, and camera-health
alerts when a loopback MJPEG camera dies mid-stream and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from helpers.cameras import MjpegServer, generated_mjpeg
from helpers.timing import scaled
from helpers.watching import LIVE, Client, Follower, serve_cameras

from vision_stream.conditions.model import HealthSettings
from vision_stream.server.cameras import CameraConfig
from vision_stream.v1 import vision_stream_pb2 as pb

FIRED, RESOLVED = pb.Alert.STATE_FIRED, pb.Alert.STATE_RESOLVED


@pytest.fixture
def camera() -> AsyncIterator[MjpegServer]:
    server = MjpegServer(generated_mjpeg(), fps=10)  # a block crossing the middle, 10 fps
    yield server
    server.close()


def alert(condition_id: str, state: int = FIRED) -> object:
    return lambda e: e.HasField("alert") and e.alert.condition_id == condition_id and e.alert.state == state


async def test_set_conditions_changes_what_fires_on_a_running_watch(camera: MjpegServer) -> None:
    client = await serve_cameras()
    try:
        config = pb.SessionConfig(session_id="w", backend="local", commentary_interval=5.0)
        watch = Follower(client.stub.Watch(pb.WatchRequest(source=camera.url(), config=config)))
        await watch.wait_for(lambda e: e.HasField("session_started"), within=10)
        answer = await client.stub.SetConditions(pb.SetConditionsRequest(session_id="w", conditions=[
            pb.WatchCondition(id="moving", text="motion in the centre", cooldown_seconds=60)]))
        assert [c.id for c in answer.conditions] == ["moving"] and answer.conditions[0].cooldown_seconds == 60
        fired = await watch.wait_for(alert("moving"), within=10)
        assert fired.alert.backend == "local" and fired.alert.frame_ids and fired.alert.evidence
        listed = await client.stub.ListSessions(pb.ListSessionsRequest())
        assert [c.text for c in listed.sessions[0].conditions] == ["motion in the centre"]

        await client.stub.SetConditions(pb.SetConditionsRequest(session_id="w", conditions=[
            pb.WatchCondition(id="smoke", text="smoke or fire")]))
        before = (await client.stub.ListSessions(pb.ListSessionsRequest())).sessions[0].last_seq
        said = await watch.wait_for(lambda e: e.HasField("error") and e.error.code == "condition_unsupported",
                                    within=10)
        assert "'smoke'" in said.error.message and "cannot evaluate" in said.error.message
        # The old condition is gone: nothing of it after the change; the new one never alerts.
        await asyncio.sleep(scaled(1.5))  # ~15 more frames judged
        assert all(e.seq <= before for e in watch.events if e.HasField("alert") and e.alert.condition_id == "moving")
        assert not [e for e in watch.events if e.HasField("alert") and e.alert.condition_id == "smoke"]

        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await client.stub.SetConditions(pb.SetConditionsRequest(session_id="w", conditions=[
                pb.WatchCondition(id="x", text="y" * 501)]))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "conditions[0]" in (bad.value.details() or "") and "501 characters" in (bad.value.details() or "")
        await watch.cancel()
    finally:
        await client.close()


async def test_a_camera_killed_mid_stream_raises_health_alerts_that_resolve_on_recovery(
        camera: MjpegServer) -> None:
    cam = CameraConfig(name="cam", source=camera.url(), description="cam", backend="local", connection=LIVE,
                       health=HealthSettings(enabled=True, no_frames_after=1.0, reconnecting_after=0.5))
    client: Client = await serve_cameras(cameras=(cam,))
    try:
        events = Follower(client.stub.Subscribe(pb.SubscribeRequest(session_id="cam")))
        await events.wait_for(lambda e: e.HasField("stats") or e.HasField("detection"), within=10)
        camera.stopping.set()  # the camera hangs up and refuses to stream...
        no_frames = await events.wait_for(alert("no_frames"), within=10)
        reconnecting = await events.wait_for(alert("reconnecting"), within=10)
        for e in (no_frames, reconnecting):
            assert e.alert.builtin and e.alert.severity == "high" and e.alert.evidence
        camera.stopping.clear()  # ...and comes back
        back = await events.wait_for(alert("no_frames", RESOLVED), within=15)
        again = await events.wait_for(alert("reconnecting", RESOLVED), within=15)
        assert back.seq > no_frames.seq and again.seq > reconnecting.seq
        assert "again" in back.alert.evidence
        listed = await client.stub.ListSessions(pb.ListSessionsRequest())
        assert listed.sessions[0].stats.alerts >= 4
        await events.cancel()
    finally:
        await client.close()
