"""A real gRPC server for camera sources on loopback, and a follower of a Watch call's events.

Shared by the camera tests (RTSP, MJPEG, source secrets); the ``client`` fixture is in
tests/cameras/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from helpers.events import Collector
from helpers.server import kinds
from helpers.timing import until
from vision_stream.config import Limits
from vision_stream.media.reconnecting import ConnectionOptions
from vision_stream.retry import RetryPolicy
from vision_stream.server.access import SourceAccess
from vision_stream.server.app import RunningServer, start_server
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

# Short timeouts so failures are found in seconds (production defaults: 10/5/10 s).
LIVE = ConnectionOptions(open_timeout=3.0, read_timeout=1.0, stall_timeout=2.0,
                   reconnect=RetryPolicy(initial_delay=0.2, max_delay=0.5, jitter=0.1))
BOUNDED = ConnectionOptions(open_timeout=2.0, read_timeout=1.0, stall_timeout=2.0,
                      reconnect=RetryPolicy(initial_delay=0.1, max_delay=0.2, max_attempts=3))
CONFIG = pb.SessionConfig(backend="local", commentary_interval=1.0)


class Client:
    def __init__(self, running: RunningServer) -> None:
        self.running = running
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        self.stub = pb_grpc.VisionStreamStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
        await self.running.stop(grace=5.0)


async def serve_cameras(*, connection: ConnectionOptions = LIVE, schemes: tuple[str, ...] = ("rtsp", "rtsps", "http"),
                cameras: tuple = ()) -> Client:
    config = ServiceConfig(access=SourceAccess(allowed_schemes=frozenset(schemes)), connection=connection,
                           limits=Limits(max_sessions=8))
    return Client(await start_server(config, host="127.0.0.1", port=0, cameras=cameras))


class Follower(Collector[pb.Event]):
    """Reads a stream of events in the background; tests wait for conditions on it."""

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        super().__init__(call, on_cancel=call.cancel)
        self.call = call

    async def wait_for(self, predicate: Callable[[pb.Event], bool], within: float, after: int = 0) -> pb.Event:
        """The first event from index ``after`` on that matches, waiting up to ``within`` s (scaled)."""

        def match() -> pb.Event | None:
            return next((e for e in self.events[after:] if predicate(e)), None)

        await until(lambda: match() is not None or self.task.done(), within=within, what="a matching event",
                    every=0.05, detail=self._summary)
        found = match()
        if found is None:
            raise AssertionError(f"the stream ended without a matching event; {self._summary()}")
        return found

    def _summary(self) -> str:
        errors = [(e.error.code, e.error.message) for e in self.events if e.HasField("error")]
        return f"got {kinds(self.events)} errors={errors}"

    async def wait_end(self, within: float) -> list[pb.Event]:
        return await self.finish(within)


def error(code: str) -> Callable[[pb.Event], bool]:
    return lambda e: e.HasField("error") and e.error.code == code


def is_recovery(e: pb.Event) -> bool:
    """The status event a camera's return produces: stats with the outage."""
    return e.HasField("stats") and e.stats.source_state == "streaming" and e.stats.source_recoveries > 0


def is_commentary(e: pb.Event) -> bool:
    return e.HasField("commentary")


def index_of(events: list[pb.Event], event: pb.Event) -> int:
    return next(i for i, e in enumerate(events) if e.seq == event.seq)
