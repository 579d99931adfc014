"""The HTTP side: an aiohttp app on the gRPC server's own event loop.

Why aiohttp: it is asyncio-native (an ``AppRunner``/``TCPSite`` pair starts
in the running loop, next to grpc.aio, with no second loop or thread), and
WebSockets, streaming responses (SSE) and a client are built in, in one
dependency. The app is built from the same ``VisionStreamService`` (its
registry, limits and backends), ``TokenTable`` and ``ServerTls`` as the gRPC
server: one set of sessions, rights and limits, two transports.

Routes: ``/v1/*`` (routes.py, sse.py, ws.py, live_tokens.py; each needs the
right of the RPC it mirrors), ``/healthz``, ``/metrics`` (Prometheus text of
vision_stream.metrics; no token, metrics carry no secrets), and ``/`` with the
page's static files (static/). Errors are JSON with the gRPC verdict (errors.py).
"""

from __future__ import annotations

import importlib
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from ...errors import NotFoundError, UsageError, VisionStreamError
from ...redact import redact_url
from ..auth import ServerTls, TokenTable
from ..service import VisionStreamService
from . import live_tokens, routes, sse, ws
from .auth import auth_middleware
from .errors import as_ours, error_response
from .jsonio import BodyTooLarge
from .state import BODY_LIMIT, SERVICE

__all__ = ["STATIC", "HttpServer", "build_app", "start_http"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png",
          ".svg": "image/svg+xml", ".ico": "image/x-icon"}
# JSON carries bytes as base64 (4/3 of the size) plus field names: room for one
# max_message_bytes message, refused beyond (413).
_JSON_OVERHEAD = 4 / 3
_JSON_SLACK = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RedactedAccessLog(AbstractAccessLogger):
    """One line per request, with credentials in the query (``?access_token=``) hidden."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %d %.3fs", request.remote, request.method, redact_url(request.path_qs),
                         response.status, time)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error a handler raises becomes the JSON error answer (errors.py)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(NotFoundError(f"no route {request.method} {redact_url(request.path)[:200]}"))
        if exc.status == 405:
            return error_response(UsageError(f"{request.method} is not allowed on {request.path[:200]}"), code=405)
        raise
    except BodyTooLarge as exc:
        return error_response(exc, code=413)
    except VisionStreamError as exc:
        return error_response(exc)
    except Exception as exc:
        if isinstance(exc, ConnectionResetError):
            raise  # the client went away
        return error_response(as_ours(exc, f"HTTP {request.method} {request.path[:200]}"))


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of vision_stream.metrics (no token: no secrets in it)."""
    try:
        module = importlib.import_module("vision_stream.metrics")
    except ImportError:  # the metrics module is optional at this point of the project
        return error_response(VisionStreamError("metrics are not available in this build"), code=503)
    body, content_type = module.render_latest()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type  # carries its own version/charset parameters
    return response


def _static_handler(path: Path) -> Handler:
    body, content_type = path.read_bytes(), _TYPES.get(path.suffix, "application/octet-stream")

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "no-cache"})

    return serve


def add_static(app: web.Application, root: Path = STATIC) -> None:
    """``/`` is index.html; each other file of ``root`` is served at ``/<name>`` (what the
    page's relative links ask for). Only files present at start are routes: nothing else is."""
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix in _TYPES:
            app.router.add_get(f"/{path.name}", _static_handler(path))
            if path.name == "index.html":
                app.router.add_get("/", _static_handler(path))


def build_app(service: VisionStreamService, tokens: TokenTable | None = None) -> web.Application:
    body_limit = int(service.config.limits.max_message_bytes * _JSON_OVERHEAD) + _JSON_SLACK
    app = web.Application(middlewares=[error_middleware, auth_middleware(tokens)], client_max_size=body_limit)
    app[SERVICE] = service
    app[BODY_LIMIT] = body_limit
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for module in (routes, sse, ws, live_tokens):
        module.add_routes(app)
    add_static(app)
    return app


@dataclass
class HttpServer:
    runner: web.AppRunner
    port: int

    async def stop(self, grace: float = 5.0) -> None:
        """Close listeners and open requests (SSE and WebSockets end), within ``grace``."""
        await self.runner.shutdown()
        await self.runner.cleanup()


def _ssl_context(tls: ServerTls, directory: Path) -> ssl.SSLContext:
    """The gRPC server's certificate and key (and client CA: mTLS) for HTTPS too."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert, key = directory / "cert.pem", directory / "key.pem"
    # ssl loads a chain only from files; written owner-only and removed right after.
    cert.write_bytes(tls.cert)
    key.touch(mode=0o600)
    key.write_bytes(tls.key)
    try:
        context.load_cert_chain(cert, key)
    finally:
        key.unlink()
        cert.unlink()
    if tls.client_ca is not None:
        context.load_verify_locations(cadata=tls.client_ca.decode("ascii", "replace"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def start_http(service: VisionStreamService, *, host: str, port: int, tokens: TokenTable | None = None,
                     tls: ServerTls | None = None) -> HttpServer:
    """Serve the HTTP side on ``host:port`` (0: a free port) in the running loop."""
    runner = web.AppRunner(build_app(service, tokens), access_log_class=RedactedAccessLog,
                           handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    context = None
    if tls is not None:
        with tempfile.TemporaryDirectory(prefix="vision-stream-tls-") as directory:
            context = _ssl_context(tls, Path(directory))
    site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror or type(exc).__name__}: pick "
                         "another --http-port (0 disables the HTTP side)") from None
    # (host, port) per listening socket (IPv6 ones have 4 fields): the first one's port.
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return HttpServer(runner, bound)
