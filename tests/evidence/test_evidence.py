"""Evidence end to end (issue 12 item 3): a real Watch of real clips, events carrying
frame ids, GetFrames returning the JPEGs the backend analysed, ExportClip remuxing
the source's own packets, and OUT_OF_RANGE naming what is retained."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import av
import grpc
import pytest
from helpers.paths import TRAFFIC_CLIP as CAR_CLIP
from helpers.server import Served

from vision_stream.config import SamplingPolicy
from vision_stream.media.frames_export import FrameExport
from vision_stream.v1 import vision_stream_pb2 as pb

FAST = pb.SessionConfig(commentary_interval=4, backend="local")


async def watch(served: Served, source: str) -> list[pb.Event]:
    return [e async for e in served.stub.Watch(pb.WatchRequest(source=source, fast=True, config=FAST))]


def evidence_ids(events: list[pb.Event]) -> dict[str, list[list[int]]]:
    found: dict[str, list[list[int]]] = {"commentary": [], "detection": []}
    for e in events:
        if e.HasField("commentary"):
            found["commentary"].append(list(e.commentary.frame_ids))
        elif e.HasField("detection") and e.detection.label != "audio_activity":
            found["detection"].append(list(e.detection.frame_ids))
    return found


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def offline_frames(path: Path, out: Path) -> dict[float, str]:
    """What `vision-stream frames` writes for ``path``: the JPEGs a --fast session samples."""
    FrameExport(str(path), out, SamplingPolicy()).run()
    return {round(float(p.name.split("_")[1][:-1]), 3): sha(p.read_bytes()) for p in out.glob("*.jpg")}


def source_packets(path: Path) -> tuple[list[bytes], bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        return [bytes(p) for p in container.demux(stream) if p.size], extradata


async def export(served: Served, session_id: str, start: float, end: float) -> tuple[pb.ClipChunk, bytes]:
    chunks = [c async for c in served.stub.ExportClip(
        pb.ExportClipRequest(session_id=session_id, from_media_time=start, to_media_time=end))]
    return chunks[0], b"".join(c.data for c in chunks)


@pytest.mark.parametrize("clip", ["sample.mp4", CAR_CLIP.name])
async def test_events_name_frames_that_get_frames_returns(served: Served, clip: str, tmp_path: Path) -> None:
    path = served.media_root / clip
    if not path.exists():
        pytest.skip(f"{CAR_CLIP} absent")
    events = await watch(served, clip)
    session_id = events[0].session_id
    ids = evidence_ids(events)
    assert ids["commentary"] and all(ids["commentary"]), "every commentary names its frames"
    assert all(len(d) == 1 for d in ids["detection"]), "a local detection names the frame analysed"
    wanted = sorted({i for group in ids["commentary"] + ids["detection"] for i in group})
    answer = await served.stub.GetFrames(pb.GetFramesRequest(session_id=session_id, frame_ids=wanted))
    assert [f.frame_id for f in answer.frames] == wanted
    # The JPEGs the analyzer got are the ones the offline sampler makes from the same file.
    reference = offline_frames(path, tmp_path / "frames")
    for frame in answer.frames:
        assert sha(frame.jpeg) == reference[round(frame.media_time, 3)]
        assert frame.width and frame.height and frame.wall_time.seconds > 0
    by_span = await served.stub.GetFrames(pb.GetFramesRequest(session_id=session_id, from_media_time=0.0,
                                                              to_media_time=2.0))
    assert by_span.frames and all(0.0 <= f.media_time <= 2.0 for f in by_span.frames)


@pytest.mark.parametrize("clip", ["sample.mp4", CAR_CLIP.name])
async def test_export_clip_remuxes_the_source_packets(served: Served, clip: str) -> None:
    path = served.media_root / clip
    if not path.exists():
        pytest.skip(f"{CAR_CLIP} absent")
    events = await watch(served, clip)
    session_id = events[0].session_id
    # Around the second commentary: from a second before it to a second after.
    moment = [e.media_time for e in events if e.HasField("commentary")][1]
    start, end = max(0.0, moment - 1.0), moment + 1.0
    first, data = await export(served, session_id, start, end)
    assert first.mime_type == "video/mp4" and not first.from_sampled_frames
    assert first.from_media_time <= start and first.to_media_time >= end

    packets, extradata = source_packets(path)
    with av.open(io.BytesIO(data)) as out:
        stream = out.streams.video[0]
        assert bytes(stream.codec_context.extradata or b"") == extradata  # same codec parameters
        got = [bytes(p) for p in out.demux(stream) if p.size]
    # No re-encode: the clip's packets are a run of the source's, byte for byte.
    at = packets.index(got[0])
    assert packets[at:at + len(got)] == got
    with av.open(io.BytesIO(data)) as out:
        times = [float(f.time) for f in out.decode(out.streams.video[0]) if f.time is not None]
    # Decoded: covers [start, end] on the session clock (the clip starts at its keyframe).
    assert times and min(times) <= 0.05
    assert first.from_media_time + max(times) >= end - 0.1


async def test_bad_spans_name_what_is_retained(served: Served) -> None:
    events = await watch(served, "sample.mp4")
    session_id = events[0].session_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await export(served, session_id, 500.0, 510.0)
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "video packets for media 0.000-" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await served.stub.GetFrames(pb.GetFramesRequest(session_id=session_id, frame_ids=[10_000]))
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE and "frames 1-" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await served.stub.GetFrames(pb.GetFramesRequest(session_id=session_id, from_media_time=3.0,
                                                        to_media_time=1.0))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_pushed_jpegs_export_a_clip_of_the_sampled_frames(served: Served) -> None:
    still = (served.media_root / "still.jpg").read_bytes()

    async def requests():
        yield pb.StreamRequest(config=pb.SessionConfig(commentary_interval=4, backend="local", lossless=True))
        for i in range(6):
            yield pb.StreamRequest(frame=pb.VideoFrame(data=still, media_time=float(i)))

    events = [e async for e in served.stub.Stream(requests())]
    session_id = events[0].session_id
    first, data = await export(served, session_id, 1.0, 4.0)
    assert first.from_sampled_frames and first.from_media_time == 1.0 and first.to_media_time == 4.0
    with av.open(io.BytesIO(data)) as out:
        stream = out.streams.video[0]
        assert stream.codec_context.name == "mjpeg"
        packets = [bytes(p) for p in out.demux(stream) if p.size]
    answer = await served.stub.GetFrames(pb.GetFramesRequest(session_id=session_id, from_media_time=1.0,
                                                             to_media_time=4.0))
    assert packets == [f.jpeg for f in answer.frames] and len(packets) == 4
