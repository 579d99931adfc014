"""Open a source named by a string: a local file path or (once supported) a camera URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import AudioPolicy
from ..errors import UsageError
from ..redact import redact_url
from .types import MediaSource


def open_source(
    spec: str, *, audio: AudioPolicy | None, loop: bool = False, sample_interval: float | None = None
) -> MediaSource:
    """A MediaSource for ``spec``. Blocking (opens the container): call off the event loop.

    ``audio=None``: video only. ``sample_interval`` (seconds, ``1 / fps`` of
    the sampling policy) lets a file decode keyframes only when its GOP is
    short enough (see :class:`~vision_stream.media.file_source.FileSource`).

    Access policy (media root, allowed schemes) is the caller's job: the
    server checks it in ``server/access.py`` before calling this.
    """
    scheme = urlsplit(spec).scheme.lower()
    if scheme and len(scheme) > 1 and scheme != "file":
        raise UsageError(f"unsupported source URL scheme {scheme!r}: {redact_url(spec)}")
    from .file_source import FileSource

    path = spec[len("file://"):] if scheme == "file" else spec
    return FileSource(path, audio=audio, loop=loop, sample_interval=sample_interval)
