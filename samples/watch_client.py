"""Minimal client: ask the server to pull a source (Watch), survive a disconnect with Subscribe.

    vision-stream serve --port 50051 --media-root samples &
    python samples/watch_client.py sample.mp4 127.0.0.1:50051
"""

from __future__ import annotations

import asyncio
import sys

import grpc

from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc


async def main(source: str, target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.VisionStreamStub(channel)
        last_seq, session_id = 0, ""
        # detach: the session keeps running if this client goes away.
        async for event in stub.Watch(pb.WatchRequest(source=source, detach=True)):
            session_id, last_seq = event.session_id, event.seq
            print(f"#{event.seq} {event.WhichOneof('payload')}")
            if event.seq == 5:
                break  # pretend the connection dropped
        # Resume exactly after the last event seen: nothing missed, nothing twice.
        async for event in stub.Subscribe(pb.SubscribeRequest(session_id=session_id, after_seq=last_seq)):
            print(f"#{event.seq} {event.WhichOneof('payload')} (resumed)")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:50051"))
