"""Building and running the gRPC server: service, health, reflection, auth, TLS, shutdown.

Authentication wraps only the VisionStream handlers (``add_service``): health
and reflection stay open so probes and ``grpcurl list`` work without a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..errors import UsageError
from ..v1 import vision_stream_pb2 as pb
from ..v1 import vision_stream_pb2_grpc as pb_grpc
from .auth import ServerTls, TokenTable, check_exposure, guard_handler
from .cameras import CameraConfig
from .http import HttpServer, start_http
from .registry import SessionRegistry
from .service import ServiceConfig, VisionStreamService
from .stream_input import transport_receive_limit

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["VisionStream"].full_name

# The event streams yield pb.Event already serialized (once per event, shared by
# every subscriber); their handlers pass those bytes through.
EVENT_STREAMS = ("Stream", "Watch", "Subscribe")


def _pass_through(message: bytes | pb.Event) -> bytes:
    return message if isinstance(message, bytes) else message.SerializeToString()


class _Capture:
    """Stands in for the server to collect the generated method handlers."""

    handlers: dict[str, Any]

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.handlers = handlers


def add_service(service: VisionStreamService, server: grpc.aio.Server,
                serializer: Callable[[Any], bytes] = _pass_through, tokens: TokenTable | None = None) -> None:
    """``add_VisionStreamServicer_to_server`` with the event streams' response
    serializer replaced by a pass-through of the bytes their handlers yield,
    and, with ``tokens``, every handler behind the token guard (auth.guard_handler)."""
    capture = _Capture()
    pb_grpc.add_VisionStreamServicer_to_server(service, capture)
    handlers = {name: handler._replace(response_serializer=serializer) if name in EVENT_STREAMS else handler
                for name, handler in capture.handlers.items()}
    # Stream's requests are read by a deserializer that never raises (stream_input.py).
    handlers["Stream"] = handlers["Stream"]._replace(request_deserializer=service.read_stream_request)
    if tokens is not None:
        handlers = {name: guard_handler(handler, name, tokens) for name, handler in handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    registry: SessionRegistry
    health: health.aio.HealthServicer
    service: VisionStreamService
    http: HttpServer | None = None  # the HTTP side (server/http), when started

    @property
    def http_port(self) -> int | None:
        """The HTTP side's bound port (None: not serving HTTP)."""
        return self.http.port if self.http is not None else None

    async def stop(self, grace: float = 10.0) -> None:
        """Graceful shutdown: refuse new RPCs, end sessions with session_ended, exit within ``grace``."""
        await self.health.enter_graceful_shutdown()
        # Sessions end first (their streams then finish by themselves);
        # server.stop refuses new RPCs at once and cancels what outlives grace.
        await asyncio.gather(self.registry.shutdown(grace * 0.8), self.server.stop(grace))
        if self.http is not None:  # its SSE streams and WebSockets ended with their sessions
            await self.http.stop()


async def start_server(
    config: ServiceConfig, *, host: str = "127.0.0.1", port: int = 0, cameras: Sequence[CameraConfig] = (),
    tokens: TokenTable | None = None, tls: ServerTls | None = None, insecure: bool = False,
    http_port: int | None = None,
) -> RunningServer:
    """Start serving on ``host:port`` (0 = a free port); returns once listening.

    ``cameras`` (from a cameras file) start as sessions named after them right
    away, with no client attached; clients Subscribe to them by name.
    ``tokens``: require a bearer token on every VisionStream call (None: every
    caller is ANONYMOUS, with every right). ``tls``: serve TLS (mTLS with a
    client CA). A non-loopback ``host`` needs both (or mTLS instead of tokens)
    unless ``insecure``: then it only logs a warning.
    ``http_port``: also serve the HTTP side (server/http: JSON API, SSE, WebSocket, the
    page, /metrics) on ``host:http_port`` in this loop, with the same tokens and TLS;
    0 picks a free port (``RunningServer.http_port``), None serves no HTTP (the CLI's
    ``--http-port 0`` means None).
    """
    if check_exposure(host, tls=tls, tokens=tokens, insecure=insecure):
        log.warning("listening on %s without %s: anyone who can reach it can use it (--insecure)",
                    host, "TLS" if tls is None else "tokens")
    if tokens is not None:
        for camera in cameras:
            unknown = sorted(set(camera.viewers) - tokens.names)
            if unknown:
                raise UsageError(f"camera {camera.name!r}: viewer {unknown[0]!r} has no token in the tokens file")
    max_bytes = config.limits.max_message_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", transport_receive_limit(max_bytes)),
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=None,
    )
    registry = SessionRegistry(max_sessions=config.limits.max_sessions)
    service = VisionStreamService(config, registry)
    add_service(service, server, tokens=tokens)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    bound = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    running = RunningServer(server, bound, registry, health_servicer, service)
    try:
        if http_port is not None:
            running.http = await start_http(service, host=host, port=http_port, tokens=tokens, tls=tls)
        for camera in cameras:
            await service.start_camera(camera)
            log.info("camera %s started: %s", camera.name, camera.description)
    except BaseException:
        await running.stop(grace=1.0)
        raise
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return running


async def serve_forever(running: RunningServer, *, grace: float = 10.0) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(running.server.wait_for_termination())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        log.info("shutting down (grace %.1f s)", grace)
        await running.stop(grace)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
