"""Minimal client: push a media file's bytes through the Stream RPC and print the events.

    vision-stream serve --port 50051 &
    python samples/push_client.py samples/sample.mp4 127.0.0.1:50051

Any container FFmpeg can demux from a stream works (MP4, MKV/WebM, MPEG-TS); the
server demuxes the bytes however they are sliced. To push frames instead, send
``VideoFrame(data=<jpeg>)`` or raw pixels with ``format``/``width``/``height``,
and ``AudioChunk(pcm_s16le=..., sample_rate=..., channels=...)``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc

from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc


async def main(path: Path, target: str) -> None:
    async def requests():
        yield pb.StreamRequest(config=pb.SessionConfig(backend="auto", lossless=True))
        with path.open("rb") as f:
            while chunk := f.read(64 * 1024):
                yield pb.StreamRequest(media=pb.MediaChunk(data=chunk))

    async with grpc.aio.insecure_channel(target) as channel:
        async for event in pb_grpc.VisionStreamStub(channel).Stream(requests()):
            kind = event.WhichOneof("payload")
            detail = getattr(event, kind)
            text = getattr(detail, "text", "") or getattr(detail, "label", "") or getattr(detail, "reason", "")
            print(f"#{event.seq} {kind}: {text}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:50051"))
