"""Small facts about URLs that several clients need, and the one remote-URL policy."""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import PermissionDeniedError
from .redact import redact_url


def is_loopback_host(host: str) -> bool:
    """True when ``host`` is this machine: ``localhost`` or a loopback address (IPv6 in
    brackets or not). '' and 0.0.0.0 are not: binding them listens on every interface."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (see :func:`is_loopback_host`)."""
    return is_loopback_host(urlsplit(url).hostname or "")


def network_failure(exc: BaseException, host: str, where: str) -> str | None:
    """A failed connection in plain words, or None when ``exc`` (or what it wraps) is no network error.

    The one wording for "could not reach it", whoever failed (Live's
    websockets, REST's httpx, FFmpeg for RTSP): no ``[Errno N]``, no
    library-internal class names. ``host`` is the bare host name, ``where``
    what the user typed (``host:port`` or a URL, credentials already redacted).
    httpx and websockets wrap the OSError: the exception's chain is searched.
    """
    seen: BaseException | None = exc
    for _ in range(8):  # bounded walk down __cause__/__context__
        if seen is None:
            return None
        if isinstance(seen, socket.gaierror):
            return f"cannot resolve host {host} (DNS): check the name"
        if isinstance(seen, ConnectionRefusedError) or getattr(seen, "errno", None) == errno.ECONNREFUSED:
            return f"connection refused by {where}: nothing listens there, or it is restarting"
        if isinstance(seen, TimeoutError) or getattr(seen, "errno", None) in _UNREACHABLE:
            return f"no route to {where}, or the connection timed out: check the address and the network"
        if isinstance(seen, OSError) and seen.strerror:
            return f"cannot connect to {where}: {seen.strerror.lower()}"
        seen = seen.__cause__ or seen.__context__
    return None


_UNREACHABLE = frozenset({errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})


REMOTE_SCHEMES = ("rtsp", "rtsps", "http", "https")


@dataclass(frozen=True, kw_only=True, slots=True)
class UrlPolicy:
    """Which remote URLs may be opened: the one rule for a client's URL, every
    redirect hop after it and every URL a playlist names (HLS segments, keys).

    schemes: URL schemes allowed (None: any of REMOTE_SCHEMES; an empty set: none).
    hosts: when non-empty, the only host names allowed (lower case).

    The server builds one from ``--allow-remote``/``--allow-host``
    (:class:`~vision_stream.server.access.SourceAccess`); the CLI's own local
    use passes none (:meth:`permissive`).
    """

    schemes: frozenset[str] | None = None
    hosts: frozenset[str] = frozenset()

    @classmethod
    def permissive(cls) -> UrlPolicy:
        return cls()

    def check(self, url: str) -> str:
        """``url`` itself when the policy allows it; PermissionDeniedError (URL redacted) otherwise."""
        shown = redact_url(url)
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            raise PermissionDeniedError(f"malformed URL: {shown}") from None
        scheme = parts.scheme.lower()
        allowed = REMOTE_SCHEMES if self.schemes is None else tuple(s for s in self.schemes if s in REMOTE_SCHEMES)
        if scheme not in allowed:
            raise PermissionDeniedError(
                f"remote sources ({scheme}://) are not allowed on this server: {shown} "
                "(start the server with --allow-remote to permit them)"
            )
        if not host:
            raise PermissionDeniedError(f"URL names no host: {shown}")
        if self.hosts and host not in self.hosts:
            raise PermissionDeniedError(f"host {host!r} is not in the server's allowed hosts: {shown}")
        return url

    def admitting(self, url: str) -> UrlPolicy:
        """This policy plus ``url``'s own scheme and host: for a URL the operator
        configured (a camera), whose redirects and segments still obey the rest."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return self
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        schemes = None if self.schemes is None else self.schemes | {scheme}
        hosts = self.hosts | {host} if self.hosts and host else self.hosts
        return UrlPolicy(schemes=schemes, hosts=hosts)
