"""Who is calling: principals, their rights, bearer tokens, TLS, and the principal of the current RPC.

``current_principal()`` is what every handler and policy asks. With
authentication off (no ``--auth-tokens``) every call is made by
:data:`ANONYMOUS`, which holds every right, so a loopback server without
tokens behaves as before.

With a tokens file, :func:`guard_handler` wraps every VisionStream handler
(``app.add_service``): it reads ``authorization: Bearer TOKEN`` from the call's
metadata, finds the token by its SHA-256 digest (constant-time comparison
against every configured digest), checks the right the RPC needs, and sets the
principal for the handler. Health and reflection are registered unwrapped, so
they stay open.

Tokens file (TOML; the secret is stored only as its SHA-256 digest)::

    [tokens.alice]
    sha256 = "<64 hex digits: sha256 of the token>"
    rights = ["push", "watch", "subscribe"]

``vision-stream token new NAME --rights ...`` makes a token and prints these lines.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import re
import secrets
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ..errors import AuthConfigError, PermissionDeniedError, UnauthenticatedError, UsageError, VisionStreamError
from ..net import is_loopback_host
from .status import abort_with

RIGHTS = frozenset({"push", "watch", "subscribe", "manage", "snapshot", "admin"})

# The right each VisionStream RPC needs. ListSessions needs ``subscribe``: it
# only lists what the caller may subscribe to. A method missing here needs
# ``admin`` (fail closed when the proto grows).
RPC_RIGHTS: Mapping[str, str] = {
    "Stream": "push",
    "Watch": "watch",
    "Subscribe": "subscribe",
    "ListSessions": "subscribe",
    "StopSession": "manage",
    "AnalyzeSnapshot": "snapshot",
    "SetConditions": "manage",
    # A session's frames and clips are its evidence: whoever may follow its
    # events may see what they are based on.
    "GetFrames": "subscribe",
    "ExportClip": "subscribe",
}

NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_TOKEN_CHARS = 512  # longer bearer values are refused before hashing
MAX_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its configured ``name`` and its ``rights`` (subset of RIGHTS)."""

    name: str
    rights: frozenset[str]

    def can(self, right: str) -> bool:
        return right in self.rights or "admin" in self.rights

    @property
    def is_admin(self) -> bool:
        return "admin" in self.rights


ANONYMOUS = Principal(name="anonymous", rights=RIGHTS)

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("vision_stream_principal", default=ANONYMOUS)


def current_principal() -> Principal:
    """The principal of the RPC being handled (ANONYMOUS when authentication is off)."""
    return _current.get()


def set_principal(principal: Principal) -> contextvars.Token[Principal]:
    return _current.set(principal)


def right_for(method: str) -> str:
    """The right the VisionStream RPC ``method`` (e.g. ``"Stream"``) needs."""
    return RPC_RIGHTS.get(method, "admin")


# ------------------------------------------------------------------- tokens

def token_digest(token: str) -> str:
    """Hex SHA-256 of ``token``: what a tokens file stores instead of the secret."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random bearer token (256 bits, URL-safe)."""
    return "vst_" + secrets.token_urlsafe(32)


def token_toml(name: str, digest: str, rights: Iterable[str]) -> str:
    """The tokens-file lines for one token."""
    listed = ", ".join(f'"{r}"' for r in sorted(rights))
    return f'[tokens.{name}]\nsha256 = "{digest}"\nrights = [{listed}]\n'


def check_rights(rights: Iterable[str], where: str) -> frozenset[str]:
    """``rights`` as a set, or UsageError naming ``where`` and the unknown right."""
    found = frozenset(rights)
    unknown = sorted(found - RIGHTS)
    if unknown:
        raise UsageError(f"{where}: unknown right {unknown[0]!r} (known: {', '.join(sorted(RIGHTS))})")
    if not found:
        raise UsageError(f"{where}: at least one right is needed (known: {', '.join(sorted(RIGHTS))})")
    return found


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    digest: bytes = field(repr=False)


class TokenTable:
    """The configured tokens: bearer metadata in, :class:`Principal` out."""

    def __init__(self, entries: Mapping[str, tuple[str, frozenset[str]]]) -> None:
        """``entries``: name -> (hex sha256 digest, rights)."""
        self._entries = tuple(_Entry(Principal(name, rights), bytes.fromhex(digest))
                              for name, (digest, rights) in entries.items())

    @property
    def names(self) -> frozenset[str]:
        return frozenset(e.principal.name for e in self._entries)

    def __repr__(self) -> str:
        return f"TokenTable(names={sorted(self.names)})"

    def principal_for(self, token: str) -> Principal | None:
        """The principal whose digest matches ``token``; every digest is compared
        (hmac.compare_digest, no early exit) so timing does not tell which one is close."""
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: Principal | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest):
                found = entry.principal
        return found

    def authenticate(self, metadata: Iterable[tuple[str, Any]] | None) -> Principal:
        """The caller named by ``authorization: Bearer TOKEN`` in gRPC ``metadata``."""
        values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
        if not values:
            raise UnauthenticatedError("missing credentials: send 'authorization: Bearer TOKEN' metadata")
        if len(values) > 1:
            raise UnauthenticatedError("more than one authorization metadata entry")
        value = values[0].decode("latin-1") if isinstance(values[0], bytes) else str(values[0])
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthenticatedError("authorization metadata must be 'Bearer TOKEN'")
        if len(token) > MAX_TOKEN_CHARS:
            raise UnauthenticatedError("invalid token")
        principal = self.principal_for(token)
        if principal is None:
            raise UnauthenticatedError("invalid token")
        return principal


def load_tokens(path: Path) -> TokenTable:
    """Read and validate a tokens file; raises AuthConfigError naming the file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise AuthConfigError(f"{path}: cannot read the tokens file: {reason}") from exc
    return parse_tokens(text, origin=path)


def parse_tokens(text: str, *, origin: Path) -> TokenTable:
    """Validate the TOML ``text`` of a tokens file read from ``origin``."""
    def error(key: str, problem: str) -> AuthConfigError:
        return AuthConfigError(f"{origin}: {key}: {problem}")

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AuthConfigError(f"{origin}: not valid TOML: {exc}") from exc
    for key in doc:
        if key != "tokens":
            raise error(key, "unknown key (known: tokens)")
    tokens = doc.get("tokens", {})
    if not isinstance(tokens, dict) or not tokens:
        raise error("tokens", "no tokens configured (add a [tokens.NAME] table with sha256 and rights)")
    if len(tokens) > MAX_TOKENS:
        raise error("tokens", f"at most {MAX_TOKENS} tokens, got {len(tokens)}")
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    seen: dict[str, str] = {}
    for name, body in tokens.items():
        where = f"tokens.{name}"
        if not NAME.fullmatch(name) or name == ANONYMOUS.name:
            raise error(where, "token names are 1-64 letters, digits, '.', '_' or '-' (not 'anonymous')")
        if not isinstance(body, dict):
            raise error(where, "must be a table with sha256 and rights")
        for key in body:
            if key not in ("sha256", "rights"):
                raise error(f"{where}.{key}", "unknown key (known: rights, sha256)")
        digest = body.get("sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
            raise error(f"{where}.sha256", "must be the 64 hex digits of the token's SHA-256 "
                                           "(vision-stream token new NAME prints it)")
        digest = digest.lower()
        if digest in seen:
            raise error(f"{where}.sha256", f"the same token as tokens.{seen[digest]}")
        seen[digest] = name
        rights = body.get("rights")
        if not isinstance(rights, list) or not all(isinstance(r, str) for r in rights):
            raise error(f"{where}.rights", f"must be a list of rights among {', '.join(sorted(RIGHTS))}")
        try:
            entries[name] = (digest, check_rights(rights, f"{origin}: {where}.rights"))
        except UsageError as exc:
            raise AuthConfigError(exc.message) from exc
    return TokenTable(entries)


# ---------------------------------------------------------------------- TLS

@dataclass(frozen=True, kw_only=True, slots=True)
class ServerTls:
    """PEM bytes for the server's TLS; with ``client_ca``, clients must present a
    certificate signed by it (mTLS). The key never shows in repr."""

    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    client_ca: bytes | None = field(default=None, repr=False)

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        # require_client_auth makes the TLS handshake itself fail for a client
        # without a certificate from client_ca (the call sees UNAVAILABLE).
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.client_ca, require_client_auth=self.client_ca is not None
        )


def read_pem(path: Path, what: str) -> bytes:
    """A PEM file's bytes, or AuthConfigError naming the file (never its content)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"{path}: cannot read the {what}: {exc.strerror or type(exc).__name__}") from exc
    if b"-----BEGIN " not in data:
        raise AuthConfigError(f"{path}: the {what} is not a PEM file")
    return data


def load_server_tls(cert: Path, key: Path, client_ca: Path | None = None) -> ServerTls:
    return ServerTls(cert=read_pem(cert, "TLS certificate"), key=read_pem(key, "TLS key"),
                     client_ca=read_pem(client_ca, "TLS client CA") if client_ca is not None else None)


def check_exposure(host: str, *, tls: ServerTls | None, tokens: TokenTable | None, insecure: bool) -> bool:
    """Refuse to listen beyond loopback unprotected; True when it does so anyway (``insecure``).

    Protected means TLS plus a way to tell clients apart: tokens, or mTLS.
    """
    if is_loopback_host(host) or (tls is not None and (tokens is not None or tls.mutual)):
        return False
    if not insecure:
        missing = " and ".join(w for w, absent in (("TLS (--tls-cert/--tls-key)", tls is None),
                                                   ("tokens (--auth-tokens)", tokens is None and
                                                    not (tls is not None and tls.mutual))) if absent)
        raise UsageError(f"refusing to listen on non-loopback {host!r} without {missing}; "
                         "pass --insecure to do it anyway")
    return True


# -------------------------------------------------------------------- guard

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]


async def admit(tokens: TokenTable, method: str, context: grpc.aio.ServicerContext) -> Principal:
    """Authenticate the call and check its right; abort UNAUTHENTICATED / PERMISSION_DENIED."""
    try:
        principal = tokens.authenticate(context.invocation_metadata())
        right = right_for(method)
        if not principal.can(right):
            raise PermissionDeniedError(f"token {principal.name!r} lacks the {right!r} right that {method} needs")
    except VisionStreamError as exc:
        # Decided before any handler runs, through the one status table.
        await abort_with(context, exc)
        raise  # abort_with always raises; this keeps type checkers informed
    return principal


def guard_handler(handler: grpc.RpcMethodHandler, method: str, tokens: TokenTable) -> grpc.RpcMethodHandler:
    """``handler`` with authentication first and the caller's principal set for it.

    grpc.aio runs each RPC in its own task and drives a streaming handler's
    async generator from that task, so the ContextVar set here is seen by the
    handler and by the tasks it creates (they copy the context), and by no
    other RPC. It is not reset: the context ends with the RPC's task.
    """
    if handler.response_streaming:
        inner_stream = handler.stream_stream if handler.request_streaming else handler.unary_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            set_principal(await admit(tokens, method, context))
            async for item in inner_stream(request, context):
                yield item

        field_name = "stream_stream" if handler.request_streaming else "unary_stream"
        return handler._replace(**{field_name: streaming})
    inner_unary: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]] = (
        handler.stream_unary if handler.request_streaming else handler.unary_unary)

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        set_principal(await admit(tokens, method, context))
        return await inner_unary(request, context)

    field_name = "stream_unary" if handler.request_streaming else "unary_unary"
    return handler._replace(**{field_name: unary})
