"""Open a source named by a string: a local file path or (once supported) a camera URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import AudioPolicy
from ..errors import UsageError
from ..redact import redact_url
from .types import MediaSource


def open_source(spec: str, *, audio: AudioPolicy, loop: bool = False) -> MediaSource:
    """A MediaSource for ``spec``. Blocking (opens the container): call off the event loop.

    Access policy (media root, allowed schemes) is the caller's job: the
    server checks it in ``server/access.py`` before calling this.
    """
    scheme = urlsplit(spec).scheme.lower()
    if scheme and len(scheme) > 1 and scheme != "file":
        raise UsageError(f"unsupported source URL scheme {scheme!r}: {redact_url(spec)}")
    from .file_source import FileSource

    path = spec[len("file://"):] if scheme == "file" else spec
    return FileSource(path, audio=audio, loop=loop)
