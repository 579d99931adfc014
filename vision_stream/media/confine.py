"""The one confined ``av.open`` for media bytes from outside the server.

Every container opened from outside (bytes a client pushes, a file under the
media root, a camera or video URL) goes through :func:`open_confined`, because
FFmpeg's demuxers will otherwise follow what the bytes say: the ``concat``
demuxer (``ffconcat version 1.0`` + ``file x``) opens any file the process can
read, the ``sdp`` demuxer binds UDP ports and takes RTP from anyone, ``hls`` and
``dash`` fetch every URL their playlist lists, ``image2`` expands ``%d``
patterns, and the ``subfile:``/``concat:``/``file:`` protocols reach other files
by URL.

Demuxers allowed (:data:`ALLOWED_FORMATS`), each one reading only the bytes in
front of it:

- MPEG-TS, MP4/MOV/fMP4 (``mov``; its ``enable_drefs`` option, which follows
  data references to other files, is passed as 0 explicitly), Matroska/WebM,
  FLV, IVF, raw H.264/H.265 elementary streams, MJPEG and multipart JPEG
  (``mpjpeg``, what an HTTP camera sends): the formats the issue names.
- AVI, Ogg, WAV, MP3: self-contained too (RIFF chunks, Ogg pages, frames: no
  field names another resource), and phones, older cameras and test
  recordings produce them (the shared test footage includes an AVI).

``hls`` is added for remote URLs only (never for pushed bytes or files), and
``rtsp`` for ``rtsp(s)://`` URLs only. Everything else (concat/ffconcat, SDP,
RTP, DASH, image sequences, ...) is refused with
:class:`~vision_stream.errors.InvalidInputError` naming the detected format:
the leading bytes are sniffed first (a text format gets its plain name
without FFmpeg ever parsing it), then FFmpeg enforces the same list itself
with the ``format_whitelist`` option (it probes, then refuses a format not on
the list before reading its header), and the opened container's format is
checked once more.

Protocols: FFmpeg's ``protocol_whitelist`` allows only the reading at hand:
``file`` for a file (opened as a ``file:`` URL, so a name like ``concat:a|b``
is just a file name), nothing (``none``) for a Python file-like object,
``rtsp``'s own transports for RTSP. HTTP(S) is never fetched by FFmpeg: an
``io_open`` callback (:class:`HttpOpener`) fetches every URL FFmpeg asks for
(the first one, HLS variant playlists, segments, keys) with httpx, checks each
against the :class:`~vision_stream.net.UrlPolicy` and follows redirects itself,
re-checking every hop. FFmpeg's own HTTP client follows redirects to any host.

Pixels: :func:`limit_decoder` sets the codec option ``max_pixels``, so FFmpeg
refuses to allocate a picture over the cap (``av_image_check_size2`` in
``ff_get_buffer``/``ff_set_dimensions``) whatever the container header said;
:func:`pixel_limit_error` turns that refusal into LimitExceededError.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import av
import av.container
import httpx

from ..errors import InvalidInputError, LimitExceededError, NotFoundError, PermissionDeniedError, SourceOpenError
from ..net import UrlPolicy, network_failure
from ..redact import redact_url

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_REDIRECTS",
    "HttpOpener",
    "Readable",
    "get_following_redirects",
    "http_reason",
    "http_status_error",
    "limit_decoder",
    "open_confined",
    "pixel_limit_error",
    "sniff_format",
    "split_credentials",
]

# FFmpeg demuxer names (AVInputFormat.name); ``mov`` is "mov,mp4,m4a,3gp,3g2,mj2"
# and ``matroska`` "matroska,webm": FFmpeg matches any comma-separated part.
ALLOWED_FORMATS: tuple[str, ...] = (
    "mpegts", "mov", "mp4", "matroska", "webm", "flv", "ivf", "h264", "hevc", "mjpeg", "mpjpeg",
    "avi", "ogg", "wav", "mp3",
)
_REMOTE_FORMATS = (*ALLOWED_FORMATS, "hls")
_RTSP_FORMATS = ("rtsp",)
# What RTSP needs: the control connection (tcp, tls for rtsps) and RTP/RTCP
# (interleaved over tcp, or udp when ``rtsp_transport=udp``).
_RTSP_PROTOCOLS = "rtsp,rtsps,rtp,srtp,tcp,udp,tls"
_ALLOWED_SHOWN = "MPEG-TS, MP4/MOV, Matroska/WebM, FLV, IVF, H.264/H.265, MJPEG, AVI, Ogg, WAV, MP3"
MAX_REDIRECTS = 5
_SNIFF_BYTES = 4096
_WHITELIST_REFUSAL = re.compile(r"\[([\w,-]{1,64})\] Format not on whitelist")
_PIXEL_REFUSAL = re.compile(r"Picture size (\d+)x(\d+) exceeds")


class Readable(Protocol):
    """A blocking byte stream FFmpeg can read (no seek: treated as a live pipe)."""

    def read(self, size: int = -1) -> bytes: ...


# ------------------------------------------------------------------- sniffing

def sniff_format(head: bytes) -> str | None:
    """A plain name for the leading bytes of a format that references other
    resources (None when it is none of those: FFmpeg decides)."""
    text = head[:_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"ffconcat version"):
        return "ffconcat (concat demuxer playlist)"
    if text.startswith(b"#extm3u"):
        return "HLS playlist"
    if re.match(rb"v=0\r?\n", text) or re.match(rb"[vosctm]=[^\r\n]*\r?\n(?:[a-z]=[^\r\n]*\r?\n)+", text):
        return "SDP (RTP session description)"
    if text.startswith(b"<?xml") or text.startswith(b"<mpd"):
        return "DASH manifest" if b"<mpd" in text else "XML"
    if text.startswith(b";ffmetadata"):
        return "ffmetadata"
    if text.startswith(b"file ") or text.startswith(b"file '"):
        return "concat list"
    return None


def _refused(description: str, name: str) -> InvalidInputError:
    return InvalidInputError(
        f"{description}: {name} is not an allowed container format (allowed: {_ALLOWED_SHOWN})"
    )


class _Replay:
    """A Readable that hands back ``head`` (already read to sniff it) first."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            size = len(self._head) if size is None or size < 0 else size
            out, self._head = bytes(self._head[:size]), self._head[size:]
            return out
        return self._rest.read(size)


def _peek(reader: Readable, want: int = 64) -> tuple[bytes, Readable]:
    """Read at least ``want`` bytes (or to EOF) and a reader that replays them."""
    chunks: list[bytes] = []
    got = 0
    while got < want:
        chunk = reader.read(_SNIFF_BYTES)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    head = b"".join(chunks)
    return head, _Replay(head, reader)


# ------------------------------------------------------------------ opening

def open_confined(
    target: str | Readable,
    *,
    description: str,
    url_policy: UrlPolicy | None = None,
    options: dict[str, str] | None = None,
    timeout: tuple[float, float] | None = None,
    opener: HttpOpener | None = None,
) -> av.container.InputContainer:
    """``av.open`` confined as the module docstring says.

    ``target``: a local path, a file-like object (pushed bytes), or an
    ``rtsp(s)://``/``http(s)://`` URL (checked against ``url_policy``; default
    permissive, for the CLI's own use). ``opener`` serves HTTP(S) (one is made
    when absent). Raises InvalidInputError (format not allowed),
    PermissionDeniedError (URL policy), NotFoundError (missing file) and
    SourceOpenError (FFmpeg cannot read it; the caller classifies URL errors
    itself, so for URLs FFmpeg's errors propagate unchanged).
    """
    opts = {"enable_drefs": "0", **(options or {})}
    io_open: Callable[[str, int, dict[str, str]], Any] | None = None
    if not isinstance(target, str):
        head, replay = _peek(target)
        if (name := sniff_format(head)) is not None:
            raise _refused(description, name)
        target_arg: str | Readable = replay
        formats, opts["protocol_whitelist"] = ALLOWED_FORMATS, "none"
    else:
        scheme = urlsplit(target).scheme.lower()
        policy = url_policy or UrlPolicy.permissive()
        if scheme in ("rtsp", "rtsps"):
            target_arg = policy.check(target)
            formats, opts["protocol_whitelist"] = _RTSP_FORMATS, _RTSP_PROTOCOLS
        elif scheme in ("http", "https"):
            target_arg = policy.check(target)
            opener = opener or HttpOpener(policy)
            io_open = opener
            # io_open replaces FFmpeg's own protocol layer for every open of
            # this context and its HLS children; nothing else may be reached.
            formats, opts["protocol_whitelist"] = _REMOTE_FORMATS, "none"
        else:
            target_arg = _file_url(target, description)
            formats, opts["protocol_whitelist"] = ALLOWED_FORMATS, "file"
    opts["format_whitelist"] = ",".join(formats)
    remote = isinstance(target, str) and "://" in target
    try:
        container = av.open(target_arg, mode="r", options=opts, timeout=timeout, io_open=io_open)
    except FileNotFoundError as exc:
        raise NotFoundError(f"media file not found: {description}") from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        match = _WHITELIST_REFUSAL.search(str(exc))
        if match is not None:
            raise _refused(description, match.group(1)) from None
        if remote:
            raise
        raise SourceOpenError(
            f"cannot open {description}: not a readable media container ({_reason(exc)})"
        ) from None
    name = container.format.name
    if not set(name.split(",")) & set(formats):  # FFmpeg enforced it already: defence in depth
        container.close()
        raise _refused(description, name)
    if not container.streams.video and not container.streams.audio:
        container.close()
        raise SourceOpenError(f"cannot open {description}: no video or audio stream")
    return container


def _file_url(path: str, description: str) -> str:
    """A ``file:`` URL for a local path (so ``concat:``/``subfile:`` in a name are
    just characters), after a sniff of its first bytes."""
    absolute = os.path.abspath(path)
    try:
        with open(absolute, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise NotFoundError(f"media file not found: {description}") from None
    except OSError as exc:
        raise SourceOpenError(f"cannot open {description}: {exc.strerror or type(exc).__name__}") from None
    if (name := sniff_format(head)) is not None:
        raise _refused(description, name)
    return "file:" + absolute


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file name PyAV appends (it may be a path or URL)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


# ------------------------------------------------------------------- pixels

def limit_decoder(stream: Any, max_pixels: int) -> None:
    """Make FFmpeg refuse to allocate a picture over ``max_pixels`` (codec option
    ``max_pixels``, checked on every size change, not just the header's)."""
    context = getattr(stream, "codec_context", None)
    if context is not None:
        context.options = {**context.options, "max_pixels": str(max_pixels)}


def pixel_limit_error(exc: BaseException, packet: Any, max_pixels: int) -> LimitExceededError | None:
    """LimitExceededError (with the sizes) when a decode error is FFmpeg's
    ``max_pixels`` refusal, else None (an ordinary corrupt packet).

    FFmpeg refuses with EINVAL; its log line "Picture size WxH exceeds" is in
    the exception only when PyAV's logging is on, so for JPEG/PNG packets
    (MJPEG, PNG tracks) the size is read from the picture's own header.
    """
    if not isinstance(exc, av.error.ArgumentError):
        return None
    match = _PIXEL_REFUSAL.search(str(exc))
    if match is not None:
        width, height = int(match.group(1)), int(match.group(2))
    else:
        from .image import probe_image_size

        try:
            _kind, width, height = probe_image_size(bytes(packet))
        except InvalidInputError:
            return None
    if width * height <= max_pixels:
        return None
    return LimitExceededError(f"media: a decoded {width}x{height} picture is over the limit of {max_pixels} pixels")


# --------------------------------------------------------------------- HTTP

def split_credentials(url: str) -> tuple[str, httpx.Auth | None]:
    """The URL without userinfo, and Basic auth for it (so httpx never logs it)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    hostport = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))


def http_status_error(status: int, description: str) -> SourceOpenError:
    """An HTTP error status as a classified SourceOpenError (401/403 permanent:
    cameras lock accounts after repeated failures; 404 retryable: NVRs answer
    404 while a stream starts)."""
    if status in (401, 403):
        what = "authentication failed" if status == 401 else "access forbidden"
        return SourceOpenError(f"cannot open {description}: {what} (HTTP {status}): check the camera's "
                               "user name and password", retryable=False)
    if status == 404:
        return SourceOpenError(f"cannot open {description}: stream not found (HTTP 404): check the URL path",
                               retryable=True)
    return SourceOpenError(f"cannot open {description}: HTTP {status}", retryable=status >= 500 or status == 429)


def http_reason(exc: httpx.HTTPError) -> str:
    """A short reason for an httpx failure (no URL: httpx's own text carries it)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        try:
            url = exc.request.url
        except RuntimeError:  # httpx raises when the error carries no request
            return "connection refused or host unreachable"
        port = url.port or (443 if url.scheme == "https" else 80)
        return network_failure(exc, url.host, f"{url.host}:{port}") or "connection refused or host unreachable"
    return type(exc).__name__


def get_following_redirects(
    client: httpx.Client, url: str, policy: UrlPolicy, *, headers: dict[str, str] | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> httpx.Response:
    """A streamed GET of ``url`` whose redirects are followed by hand, each hop
    checked against ``policy`` (PermissionDeniedError) before it is requested.

    ``client`` must not follow redirects itself (httpx's default). Credentials
    in ``url``'s user-info become Basic auth for the first request only (never
    sent on to a redirect's host, never in a URL httpx logs).
    """
    current, auth = split_credentials(policy.check(url))
    for _ in range(max_redirects + 1):
        request = client.build_request("GET", current, headers=headers)
        response = client.send(request, stream=True, auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT)
        if not response.is_redirect:
            return response
        location = response.headers.get("location", "")
        response.close()
        current, auth = split_credentials(policy.check(urljoin(current, location)))
    raise SourceOpenError(f"cannot open {redact_url(url)}: more than {max_redirects} redirects")


class HttpOpener:
    """PyAV ``io_open`` callback: every URL FFmpeg opens, fetched with httpx
    under ``policy``. A refusal is kept in ``refused`` too: FFmpeg's HLS demuxer
    logs a failed segment open and moves on, so the caller re-raises it."""

    def __init__(self, policy: UrlPolicy, *, timeout: httpx.Timeout | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.policy = policy
        self.refused: PermissionDeniedError | None = None
        self._client = httpx.Client(timeout=timeout or httpx.Timeout(10.0), transport=transport,
                                    follow_redirects=False)

    def __call__(self, url: str, flags: int, options: dict[str, str]) -> _HttpReader:
        try:
            if flags & 2:  # AVIO_FLAG_WRITE
                raise PermissionDeniedError("writing is not allowed")
            return _HttpReader(self._client, url, self.policy)
        except PermissionDeniedError as exc:
            self.refused = self.refused or exc
            raise

    def raise_if_refused(self) -> None:
        if self.refused is not None:
            raise self.refused

    def close(self) -> None:
        self._client.close()


class _HttpReader(io.RawIOBase):
    """A file-like object over one HTTP resource; seeks with Range requests
    when the server accepts them (an MP4 with its index at the end)."""

    def __init__(self, client: httpx.Client, url: str, policy: UrlPolicy) -> None:
        super().__init__()
        self._client = client
        self._url = url
        self._policy = policy
        self._pos = 0
        self._response = self._get(0)
        self._length = _content_length(self._response)
        self._ranges = self._response.headers.get("accept-ranges", "").lower() == "bytes"
        self._chunks = self._response.iter_raw()
        self._buffer = b""

    def _get(self, start: int) -> httpx.Response:
        headers = {"range": f"bytes={start}-"} if start else None
        shown = redact_url(self._url)
        try:
            response = get_following_redirects(self._client, self._url, self._policy, headers=headers)
        except httpx.HTTPError as exc:
            raise SourceOpenError(f"cannot open {shown}: {http_reason(exc)}", retryable=True) from None
        if response.status_code >= 400:
            response.close()
            raise http_status_error(response.status_code, shown)
        return response

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return b""
            except httpx.HTTPError as exc:
                raise SourceOpenError(f"connection lost: {http_reason(exc)}", retryable=True) from None
        if size is None or size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        self._pos += len(out)
        return out

    def seekable(self) -> bool:
        return self._ranges and self._length is not None

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length or 0}[whence]
        target = base + offset
        if target != self._pos:
            self._response.close()
            self._response = self._get(target)
            self._chunks = self._response.iter_raw()
            self._buffer = b""
            self._pos = target
        return self._pos

    def close(self) -> None:
        self._response.close()
        super().close()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
