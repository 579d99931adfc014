"""Network streams through FFmpeg (PyAV): RTSP/RTSPS cameras and HTTP(S) video (HLS, MP4).

One :class:`AvStreamConnection` is one ``av.open`` of the URL, decoded by the
shared :class:`~vision_stream.media.demux.ContainerDecoder`;
:func:`open_av_stream` wraps it in a reconnecting
:class:`~vision_stream.media.reconnecting.ReconnectingSource`.

Open options (why each one):

- ``rtsp_transport=tcp`` (default; ``udp`` selectable): interleaved RTP over
  the RTSP connection survives NAT/firewalls and loses no packets to the
  network (UDP loss shows up as grey smears until the next keyframe).
- ``timeout`` (FFmpeg socket I/O timeout, microseconds) *and* PyAV's
  ``timeout=(open, read)`` interrupt callback: the first makes the socket give
  up, the second bounds every blocking FFmpeg call including ones that are not
  socket reads (RTSP handshake steps, HLS playlist reloads). Without both, a
  stalled camera can hang the reading thread forever.
- ``probesize=131072``, ``analyzeduration=500000`` (0.5 s): FFmpeg's
  default stream probing waits ~2.5 s on an RTSP camera before the first
  frame (measured against gst-rtsp-server: 2.7 s -> 0.6 s per open), which
  is paid again on every reconnect.

Every open goes through :func:`~vision_stream.media.confine.open_confined`:
RTSP with only RTSP's transports allowed, HTTP(S) fetched by our own
:class:`~vision_stream.media.confine.HttpOpener` (FFmpeg never follows a
redirect or an HLS entry itself; each is checked against the URL policy).

FFmpeg's own error text can carry the URL (PyAV appends the file name to
exceptions): messages here are built from the error type and ``strerror`` and
scrubbed, never from ``str(exc)``.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import av
import av.container
import httpx

from ..config import AudioPolicy
from ..errors import SourceOpenError
from ..net import UrlPolicy
from ..redact import redact_url, scrub
from .confine import HttpOpener, open_confined
from .demux import ContainerDecoder, PacketSink
from .reconnecting import ConnectionOptions, ReconnectingSource
from .types import MediaItem

__all__ = ["AvStreamConnection", "av_open_options", "classify_av_error", "open_av_stream"]

_PROBESIZE = "131072"  # bytes
_ANALYZEDURATION = "500000"  # microseconds


def av_open_options(url: str, options: ConnectionOptions) -> dict[str, str]:
    """FFmpeg options for opening ``url`` as a live stream (see module docstring)."""
    socket_timeout = str(int(options.read_timeout * 1_000_000))  # microseconds
    opts = {"probesize": _PROBESIZE, "analyzeduration": _ANALYZEDURATION, "timeout": socket_timeout}
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        opts["rtsp_transport"] = options.transport
    return opts


def classify_av_error(exc: BaseException, *, secrets: tuple[str, ...] = (), host: str = "") -> tuple[str, bool]:
    """(message, retryable) for an FFmpeg error while opening or reading a stream.

    Wrong credentials and forbidden paths are permanent: retrying cannot fix
    them and cameras lock accounts after repeated failures. A missing path
    (404) stays retryable because NVRs and camera firmware answer 404 while a
    stream is starting; the attempt bound applies.

    ``host`` (on open): FFmpeg reports a failed DNS lookup as a bare EIO
    ("Input/output error") and a peer that answers something other than the
    protocol as "Invalid data"; with the host known both become plain words.
    """
    reason = scrub(getattr(exc, "strerror", None) or type(exc).__name__, *secrets)
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return f"authentication failed ({reason}): check the camera's user name and password", False
    if isinstance(exc, av.error.HTTPForbiddenError):
        return f"access forbidden ({reason})", False
    if isinstance(exc, av.error.HTTPNotFoundError):
        return f"stream not found ({reason}): check the URL path", True
    if isinstance(exc, av.error.ConnectionRefusedError):
        return "connection refused (nothing listens on that port, or the camera is restarting)", True
    if isinstance(exc, av.error.ExitError):
        # PyAV's interrupt callback fired: the open or read timeout passed.
        return "timed out: no data from the camera within the timeout", True
    if isinstance(exc, av.error.TimeoutError):
        return f"timed out ({reason})", True
    if host and getattr(exc, "errno", None) == errno.EIO and not _resolves(host):
        return f"cannot resolve host {host} (DNS): check the camera's address", True
    if host and isinstance(exc, av.error.InvalidDataError):
        return (f"{host} answered, but not with a stream FFmpeg can read: check the port, and the URL's "
                "scheme and path"), True
    if isinstance(exc, av.error.FFmpegError):
        return f"{type(exc).__name__}: {reason}", True
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {reason}", True
    return f"{type(exc).__name__}", True


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True


class _BrokenStream(Exception):
    """Raised through ContainerDecoder (which only catches FFmpeg errors) when
    the connection breaks, so it ends at once instead of being retried as a
    corrupt packet."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


class _LiveDemux:
    """The container as ContainerDecoder sees it, with live-stream packet policy.

    - Video packets before the first keyframe are dropped: a stream joined
      mid-GOP (every camera reconnect) would otherwise feed the decoder
      P-frames without their references (errors, grey smears).
    - Any demux error is a broken connection (read timeout, reset), raised as
      :class:`_BrokenStream` instead of being skipped like a corrupt packet.
    """

    def __init__(self, container: av.container.InputContainer, opener: HttpOpener | None = None) -> None:
        self._container = container
        self._opener = opener
        self.streams = container.streams
        self.skipped_before_keyframe = 0

    def demux(self, streams: Any) -> Iterator[av.Packet]:
        video = self._container.streams.video[0] if self._container.streams.video else None
        waiting = video is not None
        packets = self._container.demux(streams)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                self._check_refusals()
                return
            except av.error.FFmpegError as exc:
                self._check_refusals()
                raise _BrokenStream(exc) from exc
            self._check_refusals()
            if waiting and packet.stream is video and packet.size:
                if not packet.is_keyframe:
                    self.skipped_before_keyframe += 1
                    continue
                waiting = False
            yield packet

    def _check_refusals(self) -> None:
        # FFmpeg's HLS demuxer logs a segment it could not open and goes on:
        # a URL the policy refused ends the connection instead.
        if self._opener is not None:
            self._opener.raise_if_refused()


class AvStreamConnection:
    """One open network stream, decoded into media items (see module docstring)."""

    def __init__(self, url: str, *, description: str, audio: AudioPolicy | None, options: ConnectionOptions,
                 url_policy: UrlPolicy | None = None, max_pixels: int | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.description = description
        self._audio = audio
        self._max_pixels = max_pixels
        self._secrets = _url_secrets(url)
        policy = url_policy or UrlPolicy.permissive()
        self._opener: HttpOpener | None = None
        if urlsplit(url).scheme.lower() in ("http", "https"):
            timeout = httpx.Timeout(options.read_timeout, connect=options.open_timeout)
            self._opener = HttpOpener(policy, timeout=timeout, transport=transport)
        try:
            self._container = open_confined(
                url, description=description, url_policy=policy, options=av_open_options(url, options),
                timeout=(options.open_timeout, options.read_timeout), opener=self._opener,
            )
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self._close_opener()
            message, retryable = classify_av_error(exc, secrets=self._secrets, host=urlsplit(url).hostname or "")
            raise SourceOpenError(f"cannot open {description}: {message}", retryable=retryable) from None
        except BaseException:
            self._close_opener()
            raise
        self._demux = _LiveDemux(self._container, self._opener)
        # Set by ReconnectingSource (on its continued clock) when a session keeps evidence.
        self.packet_sink: PacketSink | None = None

    @property
    def skipped_before_keyframe(self) -> int:
        return self._demux.skipped_before_keyframe

    def items(self, should_stop: Callable[[], bool]) -> Iterator[MediaItem]:
        decoder = ContainerDecoder(
            self._demux,  # type: ignore[arg-type]  # duck-typed container (streams + demux)
            audio=self._audio,  # type: ignore[arg-type]  # None = video only (demux core supports it)
            should_stop=should_stop,
            max_pixels=self._max_pixels,
            # Packets after _LiveDemux's keyframe gate: the sink's segment starts decodable.
            packet_sink=self.packet_sink,
        )
        try:
            yield from decoder.items()
        except _BrokenStream as exc:
            message, retryable = classify_av_error(exc.cause, secrets=self._secrets)
            # "from None": the FFmpeg error's text carries the URL.
            raise SourceOpenError(f"connection lost: {message}", retryable=retryable) from None

    def interrupt(self) -> None:
        """Nothing to do from another thread: an FFmpeg read cannot be aborted
        safely there (closing the container under a running ``demux`` frees
        what it reads; PyAV's interrupt callback only checks the timeout). A
        streaming camera returns a packet every few milliseconds, after which
        ``should_stop`` is polled; a stalled one is ended by the socket timeout
        (``read_timeout``)."""

    def close(self) -> None:
        self._container.close()
        self._close_opener()

    def _close_opener(self) -> None:
        if self._opener is not None:
            self._opener.close()


def _url_secrets(url: str) -> tuple[str, ...]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    return tuple(s for s in (parts.password,) if s)


def open_av_stream(url: str, *, audio: AudioPolicy | None, options: ConnectionOptions | None = None,
                   url_policy: UrlPolicy | None = None, max_pixels: int | None = None) -> ReconnectingSource:
    """A reconnecting live source for an ``rtsp://``, ``rtsps://`` or ``http(s)://``
    video URL (checked against ``url_policy``). Does not connect yet: the first
    attempt runs in ``items()``."""
    opts = options or ConnectionOptions()
    description = redact_url(url)

    def connect() -> AvStreamConnection:
        return AvStreamConnection(url, description=description, audio=audio, options=opts, url_policy=url_policy,
                                  max_pixels=max_pixels)

    return ReconnectingSource(description=description, connect=connect, options=opts)
