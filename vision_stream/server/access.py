"""What a remote client may make the server open.

File sources are confined to the media root (resolved, so ``..`` and symlinks
cannot escape). Remote URLs are refused unless the server allows their scheme
(and, when a host allow-list is set, their host).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidInputError, NotFoundError, PermissionDeniedError
from ..redact import redact_url

REMOTE_SCHEMES = ("rtsp", "rtsps", "http", "https")


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceAccess:
    """media_root: directory file sources must resolve inside (None: no file access).
    allowed_schemes: URL schemes a client may ask for (empty: none).
    allowed_hosts: when non-empty, the only hosts remote URLs may name.
    """

    media_root: Path | None = None
    allowed_schemes: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()

    def resolve(self, source: str) -> str:
        """The path or URL to open for a client's ``source``, or an error."""
        if not source or len(source) > 4096 or "\x00" in source:
            raise InvalidInputError("source must be a non-empty path or URL (at most 4096 characters)")
        scheme = urlsplit(source).scheme.lower()
        if scheme in REMOTE_SCHEMES:
            return self._check_url(source, scheme)
        if scheme and len(scheme) > 1:  # "c:" style drive letters are not schemes
            raise PermissionDeniedError(f"source scheme {scheme!r} is not supported")
        return str(self._check_path(source))

    def _check_url(self, url: str, scheme: str) -> str:
        shown = redact_url(url)
        if scheme not in self.allowed_schemes:
            raise PermissionDeniedError(
                f"remote sources ({scheme}://) are not allowed on this server: {shown} "
                "(start the server with --allow-remote to permit them)"
            )
        host = (urlsplit(url).hostname or "").lower()
        if self.allowed_hosts and host not in self.allowed_hosts:
            raise PermissionDeniedError(f"host {host!r} is not in the server's allowed hosts: {shown}")
        return url

    def _check_path(self, requested: str) -> Path:
        if self.media_root is None:
            raise PermissionDeniedError("this server serves no files (no --media-root configured)")
        root = self.media_root.resolve()
        candidate = Path(requested)
        target = (candidate if candidate.is_absolute() else root / candidate).resolve()
        if not target.is_relative_to(root):
            raise PermissionDeniedError(f"{requested!r} is outside the server's media root")
        if not target.is_file():
            raise NotFoundError(f"no such file under the media root: {requested!r}")
        return target
