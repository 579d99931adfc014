"""A small asyncio client for the VisionStream service (used by the CLI and samples)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from .config import SamplingPolicy
from .errors import NotFoundError
from .server.convert import sampling_to_proto
from .v1 import vision_stream_pb2 as pb
from .v1 import vision_stream_pb2_grpc as pb_grpc

CHUNK_BYTES = 64 * 1024


def channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])


def _duration_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        if container.duration:
            return container.duration / 1_000_000
    return 0.0


async def push_file(
    target: str, path: Path, *, sampling: SamplingPolicy | None = None, backend: str = "auto",
    commentary_interval: float = 0.0, fast: bool = False, session_id: str = "",
) -> AsyncIterator[pb.Event]:
    """Push a media file's bytes as MediaChunks through ``Stream``; yield the session's events.

    Without ``fast`` the bytes are sent at the file's average bit rate, so the
    server sees roughly real-time input; with ``fast`` the session is lossless
    and gRPC flow control paces the upload.
    """
    if not await asyncio.to_thread(path.is_file):
        raise NotFoundError(f"no such file: {path}")
    duration = 0.0 if fast else await asyncio.to_thread(_duration_seconds, path)
    size = (await asyncio.to_thread(path.stat)).st_size
    config = pb.SessionConfig(session_id=session_id, backend=backend, commentary_interval=commentary_interval,
                              lossless=fast)
    if sampling is not None:
        config.sampling.CopyFrom(sampling_to_proto(sampling))

    async def requests() -> AsyncIterator[pb.StreamRequest]:
        yield pb.StreamRequest(config=config)
        start = time.monotonic()
        sent = 0
        with path.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                if duration > 0:
                    due = sent / size * duration
                    delay = due - (time.monotonic() - start)
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield pb.StreamRequest(media=pb.MediaChunk(data=chunk))
                sent += len(chunk)

    async with channel(target) as ch:
        stub = pb_grpc.VisionStreamStub(ch)
        async for event in stub.Stream(requests()):
            yield event


async def watch(
    target: str, source: str, *, fast: bool = False, detach: bool = False, backend: str = "auto",
    commentary_interval: float = 0.0,
) -> AsyncIterator[pb.Event]:
    request = pb.WatchRequest(source=source, fast=fast, detach=detach,
                              config=pb.SessionConfig(backend=backend, commentary_interval=commentary_interval))
    async with channel(target) as ch:
        async for event in pb_grpc.VisionStreamStub(ch).Watch(request):
            yield event


async def snapshot(target: str, image: bytes, *, prompt: str = "", backend: str = "auto") -> pb.SnapshotResponse:
    request = pb.SnapshotRequest(image=pb.VideoFrame(data=image), prompt=prompt, backend=backend)
    async with channel(target) as ch:
        return await pb_grpc.VisionStreamStub(ch).AnalyzeSnapshot(request)
