"""What a remote client may make the server open.

File sources are confined to the media root (resolved, so ``..`` and symlinks
cannot escape). Remote URLs are refused unless the server allows their scheme
(and, when a host allow-list is set, their host): :class:`~vision_stream.net.UrlPolicy`,
the same rule the media readers apply to every redirect and playlist entry.

Errors about paths never show the media root's absolute path, and a path
outside the root is refused before the file system is asked about it, so an
error never tells a client whether something outside the root exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import InvalidInputError, NotFoundError, PermissionDeniedError
from ..net import REMOTE_SCHEMES, UrlPolicy

__all__ = ["REMOTE_SCHEMES", "SourceAccess"]

MAX_SOURCE_CHARS = 4096
_SHOWN_CHARS = 200  # of a client's path in an error message


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceAccess:
    """media_root: directory file sources must resolve inside (None: no file access).
    allowed_schemes: URL schemes a client may ask for (empty: none).
    allowed_hosts: when non-empty, the only hosts remote URLs may name.
    """

    media_root: Path | None = None
    allowed_schemes: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()

    @property
    def url_policy(self) -> UrlPolicy:
        """The policy for client URLs, their redirects and playlist entries."""
        return UrlPolicy(schemes=self.allowed_schemes, hosts=self.allowed_hosts)

    def resolve(self, source: str) -> str:
        """The path or URL to open for a client's ``source``, or an error."""
        if not source or len(source) > MAX_SOURCE_CHARS or "\x00" in source:
            raise InvalidInputError(
                f"source must be a non-empty path or URL (at most {MAX_SOURCE_CHARS} characters, no NUL)"
            )
        scheme = urlsplit(source).scheme.lower()
        if scheme in REMOTE_SCHEMES:
            return self.url_policy.check(source)
        if scheme and len(scheme) > 1:  # "c:" style drive letters are not schemes
            raise PermissionDeniedError(f"source scheme {scheme[:20]!r} is not supported")
        return str(self._check_path(source))

    def _check_path(self, requested: str) -> Path:
        if self.media_root is None:
            raise PermissionDeniedError("this server serves no files (no --media-root configured)")
        shown = _shown(requested)
        root = self.media_root.resolve()
        candidate = Path(requested)
        # Lexical check first: a path that names somewhere outside the root is
        # refused without touching the file system (no existence oracle).
        lexical = Path(os.path.normpath(candidate if candidate.is_absolute() else root / candidate))
        if not lexical.is_relative_to(root):
            raise PermissionDeniedError(f"{shown} is outside the server's media root")
        try:
            # Path.resolve raises RuntimeError on a symlink loop (Python 3.11)
            # and OSError (ELOOP, ENAMETOOLONG) from the kernel.
            target = lexical.resolve()
            if not target.is_relative_to(root):
                raise PermissionDeniedError(f"{shown} is outside the server's media root")
            is_file = target.is_file()
        except RuntimeError:
            raise InvalidInputError(f"{shown} cannot be resolved (symbolic link loop)") from None
        except OSError as exc:
            raise InvalidInputError(f"{shown} cannot be opened: {exc.strerror or type(exc).__name__}") from None
        if not is_file:
            raise NotFoundError(f"no such file under the media root: {shown}")
        return target


def _shown(requested: str) -> str:
    """A client's path, bounded, for an error message."""
    if len(requested) <= _SHOWN_CHARS:
        return repr(requested)
    return repr(requested[:_SHOWN_CHARS]) + f"... ({len(requested)} characters)"
