"""Who is calling over HTTP: the same TokenTable, rights and limits keys as gRPC.

``Authorization: Bearer TOKEN`` on every ``/v1/*`` route. Browsers cannot set
headers on a WebSocket upgrade or an ``EventSource``, so ``?access_token=``
is accepted on exactly those routes (``/v1/stream`` and ``.../events``); the
access log redacts it (vision_stream.redact). The principal is set in the
request's task (ContextVar, as guard_handler does for an RPC) and reset after.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ...errors import PermissionDeniedError, UnauthenticatedError, VisionStreamError
from ..auth import ANONYMOUS, Principal, TokenTable, right_for, set_principal
from ..limits import client_key
from .errors import error_response

__all__ = ["QUERY_TOKEN", "auth_middleware", "authenticate", "http_client_key", "needs"]

QUERY_TOKEN = "access_token"
# A /v1 handler's attributes (set by ``needs``): the gRPC method whose right it
# needs (auth.RPC_RIGHTS is the one table) and whether ?access_token= is accepted.
_RPC = "vision_stream_rpc"
_QUERY_OK = "vision_stream_query_token"
# A /v1 route that did not say what it needs needs admin (fail closed).
_UNDECLARED = "undeclared HTTP route"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def needs(method: str, *, query_token: bool = False) -> Callable[[Handler], Handler]:
    """Mark a ``/v1`` handler with the RPC whose right it needs (and whether a browser
    may present its token as ``?access_token=``: WebSocket and EventSource only)."""
    def mark(handler: Handler) -> Handler:
        setattr(handler, _RPC, method)
        setattr(handler, _QUERY_OK, query_token)
        return handler

    return mark


def http_client_key(request: web.Request, principal: Principal) -> str:
    """The key limits count under, as limits.client_key makes it from a gRPC peer."""
    remote = request.remote or "unknown"
    peer = f"ipv6:[{remote}]:0" if ":" in remote else f"ipv4:{remote}:0"
    return client_key(principal, peer)


def _presented(request: web.Request, query_ok: bool) -> list[str]:
    """Every credential the request carries, as ``Bearer TOKEN`` values."""
    values = list(request.headers.getall("Authorization", []))
    if query_ok:
        values += [f"Bearer {token}" for token in request.query.getall(QUERY_TOKEN, [])]
    return values


def authenticate(request: web.Request, tokens: TokenTable | None, method: str, query_ok: bool) -> Principal:
    """The caller, with the right ``method`` needs; Unauthenticated/PermissionDenied otherwise."""
    if tokens is None:
        return ANONYMOUS
    values = _presented(request, query_ok)
    if not values:
        where = "an 'Authorization: Bearer TOKEN' header" + (" or ?access_token=" if query_ok else "")
        raise UnauthenticatedError(f"missing credentials: send {where}")
    principal = tokens.authenticate([("authorization", value) for value in values])
    right = right_for(method)
    if not principal.can(right):
        raise PermissionDeniedError(f"token {principal.name!r} lacks the {right!r} right that {method} needs")
    return principal


def auth_middleware(tokens: TokenTable | None) -> Middleware:
    """Authenticate every ``/v1`` request for the right its handler ``needs`` before the handler runs."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)  # the page, /healthz, /metrics: no token (no secrets there)
        method = getattr(handler, _RPC, _UNDECLARED)
        try:
            principal = authenticate(request, tokens, method, getattr(handler, _QUERY_OK, False))
        except VisionStreamError as exc:
            return error_response(exc)
        reset = set_principal(principal)
        try:
            return await handler(request)
        finally:
            reset.var.reset(reset)

    return middleware
