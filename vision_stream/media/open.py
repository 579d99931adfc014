"""Open a source named by a string: a file path, a camera URL or a local camera device."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..config import AudioPolicy, Limits
from ..errors import UsageError
from ..net import UrlPolicy
from ..redact import redact_url
from .reconnecting import ConnectionOptions
from .types import MediaSource


def open_source(
    spec: str,
    *,
    audio: AudioPolicy | None,
    loop: bool = False,
    sample_interval: float | None = None,
    connection: ConnectionOptions | None = None,
    url_policy: UrlPolicy | None = None,
    limits: Limits | None = None,
) -> MediaSource:
    """A MediaSource for ``spec``. Blocking (opens the container): call off the event loop.

    ``audio=None``: video only. ``sample_interval`` (seconds, ``1 / fps`` of
    the sampling policy) lets a file decode keyframes only when its GOP is
    short enough (see :class:`~vision_stream.media.file_source.FileSource`).

    Camera URLs (``rtsp://``, ``rtsps://``, ``http(s)://``) and local devices
    (``/dev/videoN``, ``device:N``) become reconnecting live sources configured
    by ``connection``; they connect on first iteration, not here.

    ``url_policy`` holds remote URLs, every redirect hop and every URL an
    HLS playlist names to the allowed schemes and hosts (default: any, for the
    CLI's own use; the server always passes its ``--allow-remote``/
    ``--allow-host`` policy). ``limits`` caps decoded frame sizes
    (``Limits.decode_pixel_cap``; default limits when None). The media root is
    the caller's job (``server/access.py``); every container is opened
    confined to the allowed formats (:mod:`~vision_stream.media.confine`).
    """
    max_pixels = (limits or Limits()).decode_pixel_cap
    from .device import is_device_spec, open_device

    if is_device_spec(spec):
        return open_device(spec, options=connection)
    scheme = urlsplit(spec).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        from .rtsp import open_av_stream

        return open_av_stream(spec, audio=audio, options=connection, url_policy=url_policy, max_pixels=max_pixels)
    if scheme in ("http", "https"):
        from .mjpeg import open_http_stream

        return open_http_stream(spec, audio=audio, options=connection, url_policy=url_policy, max_pixels=max_pixels)
    if scheme and len(scheme) > 1 and scheme != "file":
        raise UsageError(f"unsupported source URL scheme {scheme!r}: {redact_url(spec)}")
    from .file_source import FileSource

    path = spec[len("file://"):] if scheme == "file" else spec
    return FileSource(path, audio=audio, loop=loop, sample_interval=sample_interval, max_pixels=max_pixels)
