"""Building and running the gRPC server: service, health, reflection, auth, TLS, shutdown.

Authentication wraps only the VisionStream handlers (``add_service``): health
and reflection stay open so probes and ``grpcurl list`` work without a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ..errors import UsageError
from ..fleet import FleetOptions, FleetReplica
from ..metrics import register_registry, unregister_registry
from ..sinks import SinkConfig, SinkHub
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
    sinks: SinkHub | None = None  # webhooks/MQTT (vision_stream/sinks), when configured
    fleet: FleetReplica | None = None  # a fleet replica (vision_stream.fleet), with --events nats://

    @property
    def http_port(self) -> int | None:
        """The HTTP side's bound port (None: not serving HTTP)."""
        return self.http.port if self.http is not None else None

    async def stop(self, grace: float = 10.0) -> None:
        """Graceful shutdown: refuse new RPCs, end sessions with session_ended, exit within ``grace``."""
        await self.health.enter_graceful_shutdown()
        if self.fleet is not None:  # drain: its cameras stop, their leases go, others take them over now
            await self.fleet.drain()
        # Sessions end first (their streams then finish by themselves);
        # server.stop refuses new RPCs at once and cancels what outlives grace.
        await asyncio.gather(self.registry.shutdown(grace * 0.8), self.server.stop(grace))
        if self.sinks is not None:  # after the sessions ended: their session_ended goes out too
            await self.sinks.close(grace=min(2.0, grace * 0.2))
        unregister_registry(self.registry)
        if self.service.config.store is not None:  # last: the sessions' session_ended is written too
            await self.service.config.store.close()
        if self.http is not None:  # its SSE streams and WebSockets ended with their sessions
            await self.http.stop()


async def start_server(
    config: ServiceConfig, *, host: str = "127.0.0.1", port: int = 0, cameras: Sequence[CameraConfig] = (),
    tokens: TokenTable | None = None, tls: ServerTls | None = None, insecure: bool = False,
    http_port: int | None = None, sinks: Sequence[SinkConfig] = (), fleet: FleetOptions | None = None,
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
    ``sinks``: webhooks/MQTT for every session (``[[sinks]]``); cameras' own sinks
    (``CameraConfig.sinks``) are added; they run until ``stop``.
    ``fleet``: run as one replica of a fleet (vision_stream.fleet): ``cameras`` are started
    only as this replica's leases say, and ``stop`` drains (hands them over) first.
    """
    check_listen_address(host, port)  # before anything is built or logged: one line naming the flag to fix
    if check_exposure(host, tls=tls, tokens=tokens, insecure=insecure):
        log.warning("listening on %s without %s: anyone who can reach it can use it (--insecure)",
                    host, "TLS" if tls is None else "tokens")
    if tokens is not None:
        for camera in cameras:
            unknown = sorted(set(camera.viewers) - tokens.names)
            if unknown:
                raise UsageError(f"camera {camera.name!r}: viewer {unknown[0]!r} has no token in the tokens file")
    if config.store is not None:  # before anything listens: an unreachable store fails start-up in one line
        await config.store.open()
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
    try:
        bound = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    except RuntimeError:  # grpc: "Failed to bind to address ...; set GRPC_VERBOSITY=debug ..."
        bound = 0
    if bound == 0:  # the check above passed, then the port went: another process took it meanwhile
        raise UsageError(f"cannot listen on {host}:{port}: pick another --port (0 picks a free one)")
    try:
        await server.start()
    except BaseException:  # cancelled at this first await (asyncio.run's Ctrl-C cancels the main task)
        # Stop it now, or grpc.aio stops it from __del__ after the loop closed (a traceback);
        # a start() cancelled half-way may refuse (InvalidStateError): the original error wins.
        with contextlib.suppress(Exception):
            await server.stop(None)
        raise
    running = RunningServer(server, bound, registry, health_servicer, service)
    register_registry(registry)  # /metrics reads its sessions at scrape time
    running.sinks = SinkHub(registry, [*sinks, *(sink for camera in cameras for sink in camera.sinks)])
    running.sinks.start()
    try:
        if http_port is not None:
            running.http = await start_http(service, host=host, port=http_port, tokens=tokens, tls=tls)
        if fleet is not None:
            running.fleet = service.fleet = FleetReplica(service, cameras, fleet)
            await running.fleet.start()
        for camera in cameras if fleet is None else ():
            await service.start_camera(camera)
            log.info("camera %s started: %s", camera.name, camera.description)
    except BaseException:
        await running.stop(grace=1.0)
        raise
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return running


def check_listen_address(host: str, port: int, *, flag: str = "--port") -> None:
    """Raise UsageError naming the problem when ``host:port`` cannot be listened on (``flag``:
    the option that set the port, named in the message: doctor probes ``--http-port`` too).

    gRPC's C core reports every failed bind as one RuntimeError ("Failed to
    bind to address ...; set GRPC_VERBOSITY=debug"), and takes a port above
    65535 modulo 65536 (99999 serves on 34463); so the address is resolved and
    bound here first with a plain socket, with SO_REUSEADDR as gRPC sets it
    (a port in TIME_WAIT is free for both). Listening succeeds when any
    resolved address binds ("localhost" without IPv6 is fine): so does gRPC's.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"{flag} {port} is not a port number: 0-65535{_zero(flag)}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError):
        raise UsageError(f"--host {host[:80]!r}: cannot resolve host {host[:80]}: give an address of this machine "
                         "(127.0.0.1 for this machine only, 0.0.0.0 for every interface)") from None
    failures: list[OSError] = []
    for family, kind, proto, _name, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
                return
            except OSError as exc:
                failures.append(exc)
    raise _bind_error(host, port, failures[0] if failures else OSError(errno.EADDRNOTAVAIL, "no address"), flag)


def _zero(flag: str) -> str:
    """What port 0 means for ``flag``: a free port for gRPC, no HTTP side for ``--http-port``."""
    return " (0 picks a free one)" if flag == "--port" else " (0 turns it off)"


def _bind_error(host: str, port: int, exc: OSError, flag: str = "--port") -> UsageError:
    """The bind failure in plain words (no errno number), with the flag that fixes it."""
    if exc.errno == errno.EADDRINUSE:
        return UsageError(f"port {port} on {host} is already in use (another server?): stop it, or pick another "
                          f"{flag}{_zero(flag)}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(f"--host {host}: not an address of this machine: use 127.0.0.1 (this machine only), "
                          "0.0.0.0 (every interface) or one of its own addresses")
    if exc.errno == errno.EACCES:
        return UsageError(f"port {port} needs administrator rights (ports below 1024): pick {flag} 1024 or above")
    return UsageError(f"cannot listen on {host}:{port}: {exc.strerror or type(exc).__name__}")


async def serve_forever(running: RunningServer, *, grace: float = 10.0, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or until ``stop`` is set, when given: the caller
    then owns the signal handlers, installed before start-up so a Ctrl-C while
    the server starts stops it the same way), then shut down gracefully."""
    if stop is None:
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
