"""Small facts about URLs that several clients need, and the one remote-URL policy."""

from __future__ import annotations

import ipaddress
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
