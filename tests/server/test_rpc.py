"""Every RPC end to end over a real grpc.aio server on loopback, with real media."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers.paths import SAMPLES
from helpers.server import Served, assert_gap_free, kinds, serve
from helpers.timing import scaled

from vision_stream.v1 import vision_stream_pb2 as pb

FAST = pb.SessionConfig(commentary_interval=4, backend="local")


async def collect(call) -> list[pb.Event]:
    return [event async for event in call]


def detections(events: list[pb.Event]) -> list[tuple[str, float]]:
    return [(e.detection.label, round(e.media_time, 1)) for e in events if e.HasField("detection")]


async def test_watch_sample_produces_commentary_detections_and_end(served: Served) -> None:
    events = await collect(served.stub.Watch(pb.WatchRequest(source="sample.mp4", fast=True, config=FAST)))
    assert_gap_free(events)
    k = kinds(events)
    assert k[0] == "session_started" and k[-1] == "session_ended"
    assert "commentary" in k and "detection" in k
    assert events[-1].session_ended.reason == "end_of_input"
    totals = events[-1].session_ended.totals
    assert totals.frames_in > 200 and 10 <= totals.frames_sent <= 30
    assert totals.audio_chunks_sent > 100
    assert events[0].session_started.backend == "local"
    # The sample has a hard cut near 6 s (samples/README.md).
    cuts = [t for label, t in detections(events) if label == "scene_cut"]
    assert len(cuts) == 1 and 5.0 <= cuts[0] <= 7.5, cuts  # the slow pan after it is no cut


def _split(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40_000)
        chunks.append(data[i : i + n])
        i += n
    return chunks


async def test_stream_container_bytes_at_random_boundaries_match_the_file(served: Served) -> None:
    reference = await collect(served.stub.Watch(pb.WatchRequest(source="sample.mp4", fast=True, config=FAST)))
    data = (SAMPLES / "sample.mp4").read_bytes()

    for seed in (1, 2):
        async def requests(seed: int = seed):
            yield pb.StreamRequest(config=pb.SessionConfig(commentary_interval=4, backend="local", lossless=True))
            for chunk in _split(data, seed):
                yield pb.StreamRequest(media=pb.MediaChunk(data=chunk))

        pushed = await collect(served.stub.Stream(requests()))
        assert_gap_free(pushed)
        assert detections(pushed) == detections(reference)
        assert [e.commentary.text for e in pushed if e.HasField("commentary")] == [
            e.commentary.text for e in reference if e.HasField("commentary")
        ]


async def test_stream_pushed_images_raw_frames_and_pcm(served: Served) -> None:
    import cv2
    import numpy as np

    async def requests():
        yield pb.StreamRequest(config=pb.SessionConfig(commentary_interval=2, backend="local", lossless=True))
        for i in range(12):
            t = i * 0.5
            img = np.full((240, 320, 3), 40, np.uint8)
            cv2.rectangle(img, (20 + i * 20, 80), (80 + i * 20, 140), (0, 200, 255), -1)
            if i % 2:
                ok, jpg = cv2.imencode(".jpg", img)
                assert ok
                yield pb.StreamRequest(frame=pb.VideoFrame(data=jpg.tobytes(), media_time=t))
            else:
                rgb = img[:, :, ::-1].copy()
                yield pb.StreamRequest(frame=pb.VideoFrame(
                    data=rgb.tobytes(), format=pb.PIXEL_FORMAT_RGB24, width=320, height=240, media_time=t))
            tone = (np.sin(np.arange(22050) * 2 * np.pi * 440 / 44100) * 8000).astype("<i2")
            stereo = np.repeat(tone[:, None], 2, axis=1)
            yield pb.StreamRequest(audio=pb.AudioChunk(pcm_s16le=stereo.tobytes(), sample_rate=44100, channels=2,
                                                        media_time=t))
        yield pb.StreamRequest(prompt=pb.Prompt(text="What is moving?"))

    events = await collect(served.stub.Stream(requests()))
    assert_gap_free(events)
    totals = events[-1].session_ended.totals
    assert totals.frames_in == 12 and totals.frames_sent >= 6 and totals.frames_dropped == 0
    assert totals.audio_chunks_sent >= 100  # 6 s of audio at 50 ms chunks
    assert "commentary" in kinds(events)


@pytest.mark.slow  # ~12 s: a paced replay watched to its end
async def test_subscribe_resumes_without_missing_or_duplicated_seq(served: Served) -> None:
    watch = served.stub.Watch(pb.WatchRequest(source="sample.mp4", config=FAST, detach=True))
    first = await anext(aiter(watch))
    session_id = first.session_id
    watch.cancel()

    seen: list[pb.Event] = []
    sub = served.stub.Subscribe(pb.SubscribeRequest(session_id=session_id))
    async for event in sub:
        seen.append(event)
        if len(seen) == 3:
            break
    sub.cancel()  # a subscriber disconnecting must not end the session
    await asyncio.sleep(0.5)
    resumed = await collect(served.stub.Subscribe(pb.SubscribeRequest(session_id=session_id,
                                                                      after_seq=seen[-1].seq)))
    all_events = seen + resumed
    assert_gap_free(all_events)
    assert all_events[-1].HasField("session_ended")
    assert all_events[-1].session_ended.reason == "end_of_input"


async def test_list_and_stop_sessions(served: Served) -> None:
    watch = served.stub.Watch(pb.WatchRequest(source="sample.mp4", loop=True, detach=True, config=FAST))
    first = await anext(aiter(watch))
    listed = await served.stub.ListSessions(pb.ListSessionsRequest())
    info = {s.session_id: s for s in listed.sessions}[first.session_id]
    assert info.state in ("starting", "running") and info.source == "sample.mp4"
    stopped = await served.stub.StopSession(pb.StopSessionRequest(session_id=first.session_id))
    assert stopped.session.state == "ended"
    rest = await collect(watch)
    assert rest[-1].session_ended.reason == "stopped"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await served.stub.StopSession(pb.StopSessionRequest(session_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_analyze_snapshot(served: Served) -> None:
    reply = await served.stub.AnalyzeSnapshot(pb.SnapshotRequest(
        image=pb.VideoFrame(data=(SAMPLES / "still.jpg").read_bytes()), prompt="What is in the picture?"))
    assert reply.backend == "local" and len(reply.text) > 20
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await served.stub.AnalyzeSnapshot(pb.SnapshotRequest(image=pb.VideoFrame(data=b"not an image")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_and_reflection(served: Served) -> None:
    health = health_pb2_grpc.HealthStub(served.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="vision_stream.v1.VisionStream"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(served.channel)

    async def ask():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in refl.ServerReflectionInfo(ask()):
        names = {s.name for s in response.list_services_response.service}
        assert {"vision_stream.v1.VisionStream", "grpc.health.v1.Health"} <= names
        break


# ------------------------------------------------------------------ bad input

async def _stream_status(served: Served, *messages: pb.StreamRequest) -> tuple[grpc.StatusCode, str, list]:
    async def requests():
        for m in messages:
            yield m

    call = served.stub.Stream(requests())
    events = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for event in call:
            events.append(event)
    return err.value.code(), err.value.details(), events


CONFIG = pb.StreamRequest(config=pb.SessionConfig(backend="local"))


async def test_first_stream_message_must_be_config(served: Served) -> None:
    code, details, _ = await _stream_status(served, pb.StreamRequest(prompt=pb.Prompt(text="hi")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "config" in details


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (pb.VideoFrame(data=b"\x00" * 10, format=pb.PIXEL_FORMAT_RGB24, width=4, height=4), "expected 48"),
        (pb.VideoFrame(data=b"\x00" * 48, format=77, width=4, height=4), "format"),
        (pb.VideoFrame(data=b"garbage, not a jpeg"), "image"),
    ],
)
async def test_bad_frames_are_invalid_argument_and_keep_what_was_accepted(
    served: Served, frame: pb.VideoFrame, needle: str
) -> None:
    good = pb.StreamRequest(frame=pb.VideoFrame(data=(SAMPLES / "still.jpg").read_bytes(), media_time=0.0))
    code, details, events = await _stream_status(served, CONFIG, good, pb.StreamRequest(frame=frame))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in details.lower() and "message 3" in details
    # The frame accepted before the bad one was still processed to the end.
    assert events[-1].HasField("session_ended") and events[-1].session_ended.totals.frames_sent == 1


async def test_garbage_container_bytes_fail_cleanly_and_other_sessions_go_on(served: Served) -> None:
    other = asyncio.create_task(collect(served.stub.Watch(pb.WatchRequest(source="sample.mp4", fast=True,
                                                                          config=FAST))))
    junk = bytes(random.Random(7).getrandbits(8) for _ in range(200_000))

    async def requests():
        yield CONFIG
        for i in range(0, len(junk), 10_000):
            yield pb.StreamRequest(media=pb.MediaChunk(data=junk[i : i + 10_000]))

    events = await asyncio.wait_for(collect(served.stub.Stream(requests())), scaled(30))
    assert events[-1].HasField("session_ended")
    assert any(e.HasField("error") for e in events)
    ok = await asyncio.wait_for(other, scaled(60))
    assert ok[-1].session_ended.reason == "end_of_input"


async def test_watch_statuses(served: Served, tmp_path: Path) -> None:
    async def status(source: str) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await collect(served.stub.Watch(pb.WatchRequest(source=source, config=FAST)))
        assert "secret" not in (err.value.details() or "")
        return err.value.code()

    assert await status("missing.mp4") == grpc.StatusCode.NOT_FOUND
    assert await status("../outside.mp4") == grpc.StatusCode.PERMISSION_DENIED
    assert await status("/etc/passwd") == grpc.StatusCode.PERMISSION_DENIED
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    os.symlink(outside, served.media_root / "link.mp4")
    assert await status("link.mp4") == grpc.StatusCode.PERMISSION_DENIED
    assert await status("rtsp://user:secret@127.0.0.1:8554/cam") == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(served.stub.Subscribe(pb.SubscribeRequest(session_id="unknown")))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_session_limit_is_resource_exhausted(served: Served) -> None:
    calls = []
    for _ in range(8):
        call = served.stub.Watch(pb.WatchRequest(source="sample.mp4", loop=True, config=FAST))
        await anext(aiter(call))
        calls.append(call)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(served.stub.Watch(pb.WatchRequest(source="sample.mp4", config=FAST)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for call in calls:
        call.cancel()


async def test_corrupt_clip_processes_to_the_end(shared_media: Path, media_root: Path) -> None:
    import shutil

    from vision_stream.server.access import SourceAccess
    from vision_stream.server.service import ServiceConfig

    shutil.copy(shared_media / "vi3o_systime_CORRUPT.mkv", media_root / "corrupt.mkv")
    async for served in serve(ServiceConfig(access=SourceAccess(media_root=media_root)), media_root):
        events = await collect(served.stub.Watch(pb.WatchRequest(source="corrupt.mkv", fast=True, config=FAST)))
        end = events[-1].session_ended
        assert end.reason == "end_of_input"
        assert end.totals.bad_packets == 2
        assert [e.error.code for e in events if e.HasField("error")] == ["bad_packet"]


async def test_oversized_message_is_resource_exhausted(served: Served) -> None:
    huge = pb.StreamRequest(frame=pb.VideoFrame(data=b"\xff" * (17 * 1024 * 1024)))
    code, _, _ = await _stream_status(served, CONFIG, huge)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The server is fine afterwards.
    assert (await served.stub.ListSessions(pb.ListSessionsRequest())) is not None
