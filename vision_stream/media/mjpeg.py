"""HTTP MJPEG cameras (``multipart/x-mixed-replace``) and HTTP(S) URL dispatch.

Why our own multipart parser instead of FFmpeg's ``mpjpeg`` demuxer: camera
firmware is loose with the multipart format, and the parser is where that
looseness has to be absorbed. Seen in the field and handled here: a boundary
in the ``Content-Type`` header that does not match the one in the body (Axis
sends ``boundary=myboundary`` with or without the leading dashes), parts
without ``Content-Length``, LF-only line ends, and junk between parts. FFmpeg's
demuxer also gives the frames no timestamps (they are paced by arrival, not
by the container), whereas here each JPEG's media time is its arrival time on
the monotonic clock (seconds since the connection's first JPEG), which is what
a live MJPEG stream's time *is*. The body is read as the bytes arrive (httpx's
``iter_raw()`` without a chunk size yields each socket read as it returns):
a fixed-size read would wait for that many bytes, and a 160x120 camera at
8 fps sends ~24 KB/s, so 64 KiB reads delivered frames in bursts every
~2.7 s, all with one arrival time. Decoding
stays lazy (:func:`~vision_stream.media.image.jpeg_video_frame`): a JPEG that
is not sampled or probed is never decoded, and probes decode at 1/2-1/8 scale
(libjpeg's DCT scaling).

:class:`MultipartJpegParser` is sans-I/O (bytes in, JPEG payloads out);
:class:`MjpegConnection` drives it with httpx streaming.
:func:`open_http_stream` picks MJPEG or FFmpeg (HLS, progressive MP4) per
connection from the response's ``Content-Type``.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..config import AudioPolicy
from ..errors import LimitExceededError, SourceOpenError
from ..net import UrlPolicy
from ..redact import redact_url
from .confine import get_following_redirects, http_reason, http_status_error
from .image import jpeg_video_frame
from .reconnecting import Connection, ConnectionOptions, ReconnectingSource
from .types import BadPacket, MediaItem

__all__ = [
    "MAX_PART_BYTES",
    "JpegPart",
    "MjpegConnection",
    "MultipartJpegParser",
    "open_http_stream",
]

MAX_PART_BYTES = 16 * 1024 * 1024  # one JPEG; a 4K camera frame is ~1-3 MB
_MAX_HEADER_BYTES = 8192  # part headers
# URL endings FFmpeg handles directly (no sniffing request first).
_AV_SUFFIXES = (".m3u8", ".mp4", ".m4v", ".mkv", ".webm", ".ts", ".mov", ".flv", ".mpd")


# --------------------------------------------------------------------- parser

@dataclass(frozen=True, slots=True)
class JpegPart:
    """One part of the multipart body: its payload, or why it is unusable."""

    data: bytes
    error: str = ""


class MultipartJpegParser:
    """Split a ``multipart/x-mixed-replace`` byte stream into JPEG payloads (sans-I/O).

    The boundary is learnt from the body's first delimiter line (``--xyz``),
    not trusted from the header. A part with ``Content-Length`` is read by
    length (JPEG data may contain anything); one without is cut at the next
    delimiter. Buffered bytes are bounded by ``max_part_bytes`` plus headers:
    beyond that the stream is declared broken (:class:`ValueError`).
    """

    def __init__(self, *, max_part_bytes: int = MAX_PART_BYTES) -> None:
        self._delimiter: bytes | None = None
        self._max = max_part_bytes
        self._buf = bytearray()
        self._length: int | None = None  # body length of the current part, when known
        self._in_body = False
        self.parts = 0

    def feed(self, data: bytes) -> list[JpegPart]:
        """Add bytes; return every part completed by them."""
        self._buf += data
        out: list[JpegPart] = []
        while True:
            part = self._next()
            if part is None:
                break
            out.append(part)
        if len(self._buf) > self._max + _MAX_HEADER_BYTES:
            raise ValueError(f"multipart part larger than {self._max} bytes or no boundary found")
        return out

    def _next(self) -> JpegPart | None:
        if not self._in_body:
            if not self._read_headers():
                return None
        if self._length is not None:
            if len(self._buf) < self._length:
                return None
            body = bytes(self._buf[: self._length])
            del self._buf[: self._length]
        else:
            assert self._delimiter is not None
            end = self._buf.find(b"\n" + self._delimiter)
            if end < 0:
                return None
            body = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[: end + 1]
        self._in_body = False
        self.parts += 1
        if not body.startswith(b"\xff\xd8"):
            return JpegPart(b"", f"part {self.parts} is not a JPEG ({len(body)} bytes)")
        return JpegPart(body)

    def _read_headers(self) -> bool:
        """Skip to the next delimiter line and parse the part headers after it."""
        if self._delimiter is None:
            match = re.search(rb"(?m)^--([^\r\n]{1,200})\r?\n", self._buf)
            if match is None:
                return False
            self._delimiter = b"--" + match.group(1).rstrip()
        start = self._buf.find(self._delimiter)
        if start < 0:
            # Keep a tail in case a delimiter is split across reads.
            keep = len(self._delimiter) + 2
            if len(self._buf) > keep:
                del self._buf[: len(self._buf) - keep]
            return False
        ends = [(i, len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if (i := self._buf.find(sep, start)) >= 0]
        if not ends:
            if len(self._buf) - start > _MAX_HEADER_BYTES:
                raise ValueError("multipart part headers too long")
            return False
        i, sep_len = min(ends)
        headers = bytes(self._buf[start:i]).decode("latin-1").splitlines()[1:]
        del self._buf[: i + sep_len]
        self._length = None
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length" and value.strip().isdigit():
                length = int(value.strip())
                if length > self._max:
                    raise ValueError(f"multipart part of {length} bytes exceeds {self._max}")
                self._length = length
        self._in_body = True
        return True


# ----------------------------------------------------------------- connection

class MjpegConnection:
    """One HTTP response carrying ``multipart/x-mixed-replace`` JPEGs.

    Built from an already-started streamed response (see :func:`open_http_stream`).
    ``clock`` (monotonic seconds) stamps each JPEG's arrival: media time is
    seconds since the first JPEG of this connection (the reconnecting source
    continues it across connections).
    """

    def __init__(self, client: httpx.Client, response: httpx.Response, *, description: str,
                 clock: Callable[[], float] = time.monotonic, max_pixels: int | None = None) -> None:
        self._client = client
        self._max_pixels = max_pixels
        self._response = response
        self._clock = clock
        self._first_at: float | None = None  # clock() of the first JPEG
        self.description = description
        # The header's boundary parameter is not used: firmware gets it wrong
        # (see the module docstring); the parser learns it from the body.
        self.parser = MultipartJpegParser()

    def items(self, should_stop: Callable[[], bool]) -> Iterator[MediaItem]:
        try:
            # No chunk size: each chunk is what one socket read returned, as
            # soon as it returned (httpcore reads up to 64 KiB, h11 passes the
            # body bytes on as they come), so a part is parsed when its last
            # byte arrives.
            for chunk in self._response.iter_raw():
                yield from self._parts(chunk)
                if should_stop():
                    return
        except httpx.TimeoutException:
            raise SourceOpenError("connection lost: timed out: no data from the camera within the timeout",
                                  retryable=True) from None
        except httpx.HTTPError as exc:
            raise SourceOpenError(f"connection lost: {type(exc).__name__}", retryable=True) from None

    def _parts(self, chunk: bytes) -> Iterator[MediaItem]:
        """The items completed by ``chunk``, stamped with its arrival time."""
        try:
            parts = self.parser.feed(chunk)
        except ValueError as exc:
            raise SourceOpenError(f"connection lost: broken MJPEG stream: {exc}", retryable=True) from exc
        if not parts:
            return
        now = self._clock()
        if self._first_at is None:
            self._first_at = now
        t = now - self._first_at
        for part in parts:
            frame = jpeg_video_frame(part.data, media_time=t) if part.data else None
            if frame is None:
                yield BadPacket(t, part.error or "MJPEG part with an unreadable JPEG header")
            elif self._max_pixels is not None and frame.width * frame.height > self._max_pixels:
                raise LimitExceededError(f"media: a {frame.width}x{frame.height} MJPEG frame is over "
                                         f"the limit of {self._max_pixels} pixels")
            else:
                yield frame

    def interrupt(self) -> None:
        """Unblock a read in progress, from any thread: ``shutdown()`` on the
        socket makes a ``recv()`` blocked in another thread return at once
        (end of stream; Linux and BSD semantics), where closing the httpx
        response there would race the reading thread. ``close()`` follows in
        the reading thread."""
        stream = self._response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed or never connected
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._response.close()
        self._client.close()


def _is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower().startswith("multipart/")


def open_http_stream(
    url: str,
    *,
    audio: AudioPolicy | None,
    options: ConnectionOptions | None = None,
    transport: httpx.BaseTransport | None = None,
    url_policy: UrlPolicy | None = None,
    max_pixels: int | None = None,
) -> ReconnectingSource:
    """A reconnecting source for an ``http(s)://`` camera or video URL.

    Each connection sends one GET: a ``multipart/*`` answer is read as MJPEG;
    anything else (HLS playlist, MP4, MPEG-TS) is closed and opened by FFmpeg
    instead. URLs ending in a known media suffix go to FFmpeg directly.
    Credentials in the URL become HTTP Basic auth and never reach a log line.
    Redirects are followed by hand, each hop checked against ``url_policy``
    (default: any host), as are FFmpeg's fetches
    (:class:`~vision_stream.media.confine.HttpOpener`); ``max_pixels`` caps
    decoded frames (MJPEG frames by their JPEG header).
    """
    from .rtsp import AvStreamConnection

    opts = options or ConnectionOptions()
    policy = url_policy or UrlPolicy.permissive()
    description = redact_url(url)
    timeout = httpx.Timeout(opts.read_timeout, connect=opts.open_timeout)

    def av_connection() -> Connection:
        return AvStreamConnection(url, description=description, audio=audio, options=opts, url_policy=policy,
                                  max_pixels=max_pixels, transport=transport)

    def connect() -> Connection:
        policy.check(url)
        if urlsplit(url).path.lower().endswith(_AV_SUFFIXES):
            return av_connection()
        client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)
        try:
            response = get_following_redirects(client, url, policy)
        except httpx.HTTPError as exc:
            client.close()
            raise SourceOpenError(f"cannot open {description}: {http_reason(exc)}", retryable=True) from None
        except BaseException:
            client.close()
            raise
        if response.status_code >= 400:
            response.close()
            client.close()
            raise http_status_error(response.status_code, description)
        if _is_multipart(response.headers.get("content-type", "")):
            return MjpegConnection(client, response, description=description, max_pixels=max_pixels)
        response.close()
        client.close()
        return av_connection()

    return ReconnectingSource(description=description, connect=connect, options=opts)
