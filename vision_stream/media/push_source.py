"""Media pushed by a client (gRPC ``Stream``) as a MediaSource.

The gRPC handler runs on the event loop and calls the ``put_*`` coroutines;
the pipeline's worker thread iterates :meth:`PushSource.items`. Between them
sits one bounded, thread-safe handoff (``limits.push_queue`` messages and
``max_buffer_bytes`` bytes): when it is full, ``put_*`` awaits space without
blocking the loop, so the handler stops reading and HTTP/2 flow control pushes
back on the client.

Two modes, fixed by the first message:

- *frames*: encoded images (``put_image``), raw pixels (``put_raw``) and PCM
  (``put_pcm``), in any mix;
- *container*: ``put_container`` slices of one container byte stream
  (MPEG-TS, fragmented MP4, WebM/MKV, cut anywhere), demuxed and decoded in the
  worker with the same code as :class:`~vision_stream.media.file_source.FileSource`.

Errors, by where they surface:

- ``put_*`` raise :class:`InvalidInputError` (message names the proto field)
  for anything checkable on arrival: sizes, formats, rates, channel counts,
  image headers (not JPEG/PNG, truncated header), non-finite media times,
  mixing modes; :class:`LimitExceededError` for pictures over
  ``limits.max_frame_pixels`` (read from the image header, before
  decoding); :class:`SessionError` after ``end()``/``close()`` or once
  ``items()`` has stopped (for any reason), including a ``put_*`` that was waiting for room at that moment.
- ``items()`` yields :class:`BadPacket` for an image whose header was fine but
  whose body does not decode, and for corrupt container packets.
- ``items()`` raises :class:`SourceOpenError` when container bytes are not a
  readable container (garbage), :class:`InvalidInputError` when they are a
  format that is not allowed (ffconcat, SDP, HLS, ...: see
  :mod:`~vision_stream.media.confine`), :class:`LimitExceededError` when a
  decoded frame is over ``limits.decode_pixel_cap`` (whatever the header
  said), and :class:`DecodeError` when a container turns unreadable
  mid-stream; each ends the source.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from ..config import AudioPolicy, Limits
from ..errors import InvalidInputError, LimitExceededError, SessionError
from .audio import AudioConverter
from .confine import sniff_format
from .demux import ContainerDecoder, PacketSink, open_container
from .image import decode_image, jpeg_video_frame, probe_image_size
from .raw import PIXEL_FORMATS, check_raw, raw_view, to_bgr, to_gray
from .types import BadPacket, MediaItem, VideoFrame

__all__ = ["DEFAULT_MAX_BUFFER_BYTES", "PIXEL_FORMATS", "PushSource"]

# Bytes buffered between handler and worker; with 16 MiB messages a count bound
# alone would allow gigabytes. At least one message is always admitted.
DEFAULT_MAX_BUFFER_BYTES = 32 * 1024 * 1024

_SNIFF_AT = 64  # bytes of a container stream sniffed on arrival
MIN_RATE, MAX_RATE = 8000, 192000  # accepted PCM sample rates, Hz
MAX_CHANNELS = 8

Mode = Literal["frames", "container"]


@dataclass(frozen=True, slots=True)
class _Image:
    data: bytes
    media_time: float
    kind: str  # "jpeg" or "png", from the header


@dataclass(frozen=True, slots=True)
class _Raw:
    data: bytes
    width: int
    height: int
    fmt: str
    media_time: float


@dataclass(frozen=True, slots=True)
class _Pcm:
    data: bytes
    rate: int
    channels: int
    media_time: float


_Message = _Image | _Raw | _Pcm | bytes  # bytes: a container slice


class _Handoff:
    """Bounded FIFO from asyncio producers to one blocking consumer thread.

    ``put`` (async) waits for room on the event loop; ``get`` (blocking) waits
    for an item in the worker thread. Bounded by ``max_items`` and ``max_bytes``.
    ``finish()``: producer is done (consumer drains, then gets None).
    ``close()``: consumer is done (queued items dropped; waiting producers fail).
    """

    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._items: deque[tuple[_Message, int]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.finished = False
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise SessionError("push source is closed (its consumer stopped)")
        if self.finished:
            raise SessionError("push source input already ended")

    def _has_room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self._max_items and self._bytes + size <= self._max_bytes

    async def put(self, item: _Message, size: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                self._check_open()
                if self._has_room(size):
                    self._items.append((item, size))
                    self._bytes += size
                    self._ready.notify()
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, waiter))
            try:
                await waiter
            finally:
                with self._lock:
                    if (loop, waiter) in self._waiters:
                        self._waiters.remove((loop, waiter))

    def get(self) -> _Message | None:
        """Next item, blocking; None once finished and drained, or closed."""
        with self._lock:
            while not self._items and not self.finished and not self.closed:
                self._ready.wait()
            if self.closed or not self._items:
                return None
            item, size = self._items.popleft()
            self._bytes -= size
            self._wake_waiters()
            return item

    def finish(self) -> None:
        with self._lock:
            self.finished = True
            self._ready.notify_all()
            self._wake_waiters()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._items.clear()
            self._bytes = 0
            self._ready.notify_all()
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        # Wake every waiter (usually one handler); each re-checks for room.
        # Called with the lock held, from the worker thread or the loop.
        waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, waiter)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _PipeReader:
    """A read-only file-like object over container slices taken from the handoff.

    ``read`` blocks until bytes arrive and returns b"" (EOF) after ``end()`` or
    ``close()``; FFmpeg treats it as a non-seekable stream (no seek/tell).
    """

    def __init__(self, take: Callable[[], _Message | None]) -> None:
        self._take = take
        self._buffer = memoryview(b"")
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            item = self._take()
            if item is None:
                return b""
            if not isinstance(item, bytes):  # cannot happen: modes are exclusive
                continue
            self._buffer = memoryview(item)
        if size is None or size < 0:
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        self._buffer = self._buffer[size:]
        self.bytes_read += len(out)
        return out


class PushSource:
    """A live MediaSource fed by a client's messages; see the module docstring.

    ``media_time`` arguments are seconds; when None, the arrival time (seconds
    since the first pushed message, ``clock`` = time.monotonic) is used.
    Counters: ``messages_in``, ``bad_packets``.
    """

    live = True

    def __init__(
        self,
        *,
        audio: AudioPolicy,
        limits: Limits,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        description: str = "push",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description = description
        self.audio = audio
        self.limits = limits
        self._clock = clock
        self._first_arrival: float | None = None
        self._handoff = _Handoff(max_items=limits.push_queue, max_bytes=max_buffer_bytes)
        self._stop = threading.Event()
        self._started = False
        self.mode: Mode | None = None
        self._head = b""  # the container stream's first bytes, for sniff_format
        self.messages_in = 0
        self.bad_packets = 0
        # A session's evidence (pipeline/packet_ring.py): pushed containers keep their packets.
        self.packet_sink: PacketSink | None = None

    # -- producer side (event loop) ---------------------------------------

    async def put_image(self, data: bytes, media_time: float | None = None) -> None:
        """Queue an encoded JPEG/PNG picture. The header is checked now (size, kind);
        the pixels are decoded in the worker."""
        self._enter_mode("frames", "frame")
        kind, width, height = self._probe(data)
        self._check_pixels(width, height)
        await self._put(_Image(bytes(data), self._time(media_time, "frame.media_time"), kind), len(data))

    async def put_raw(
        self, data: bytes, width: int, height: int, fmt: str, media_time: float | None = None
    ) -> None:
        """Queue raw pixels, ``fmt`` in PIXEL_FORMATS, rows packed (no padding)."""
        self._enter_mode("frames", "frame")
        if fmt in PIXEL_FORMATS and width > 0 and height > 0:
            self._check_pixels(width, height)  # the limit first: a clearer error for huge frames
        check_raw(data, width, height, fmt)
        item = _Raw(bytes(data), width, height, fmt, self._time(media_time, "frame.media_time"))
        await self._put(item, len(data))

    async def put_pcm(self, data: bytes, rate: int, channels: int, media_time: float | None = None) -> None:
        """Queue interleaved s16le PCM at ``rate`` Hz with ``channels`` channels."""
        self._enter_mode("frames", "audio")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise InvalidInputError(f"audio.sample_rate must be in [{MIN_RATE}, {MAX_RATE}] Hz, got {rate}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise InvalidInputError(f"audio.channels must be in [1, {MAX_CHANNELS}], got {channels}")
        if len(data) % (2 * channels):
            raise InvalidInputError(
                f"audio.pcm_s16le: {len(data)} bytes is not a whole number of "
                f"{channels}-channel 16-bit samples ({2 * channels} bytes each)"
            )
        await self._put(
            _Pcm(bytes(data), rate, channels, self._time(media_time, "audio.media_time")), len(data)
        )

    async def put_container(self, data: bytes) -> None:
        """Queue the next slice of a container byte stream (any cut point). Empty slices are ignored.

        The stream's first bytes are sniffed on arrival: a format that names
        other resources (ffconcat, SDP, HLS, DASH) is refused here, as the
        message that carries it (the worker's confined open refuses it too,
        and every other format that is not allowed)."""
        self._enter_mode("container", "media")
        if not data:
            return
        if len(self._head) < _SNIFF_AT:
            self._head += bytes(data[: _SNIFF_AT - len(self._head)])
            if (name := sniff_format(self._head)) is not None:
                raise InvalidInputError(f"media: {name} is not an allowed container format")
        self._time(None, "media")  # starts the arrival clock like any other message
        await self._put(bytes(data), len(data))

    def end(self) -> None:
        """The client half-closed: items() drains what is queued, flushes, then ends."""
        self._handoff.finish()

    # -- consumer side (worker thread) ------------------------------------

    def items(self) -> Iterator[MediaItem]:
        """Blocking iterator of media items (run in a worker thread); call once."""
        if self._started:
            raise SessionError("PushSource.items() may only be iterated once")
        self._started = True
        try:
            first = self._handoff.get()
            if first is None:
                return
            if isinstance(first, bytes):
                yield from self._container_items(first)
            else:
                yield from self._frame_items(first)
        finally:
            # Whatever ended the consumer (end of input, an error, the caller
            # dropping the iterator), a producer must not wait for room forever.
            self._handoff.close()

    def close(self) -> None:
        """Stop: drop queued input, fail pending/future puts; safe from any thread."""
        self._stop.set()
        self._handoff.close()

    # -- internals ----------------------------------------------------------

    def _enter_mode(self, mode: Mode, field: str) -> None:
        """Reject a message of the other mode (the mode is fixed by the first queued message)."""
        if self.mode is not None and self.mode != mode:
            other = "media (container bytes)" if self.mode == "container" else "frame/audio messages"
            raise InvalidInputError(f"{field}: cannot be mixed with {other} in one stream")

    def _probe(self, data: bytes) -> tuple[str, int, int]:
        try:
            kind, width, height = probe_image_size(data)
        except InvalidInputError as exc:
            raise InvalidInputError(f"frame.data: {exc.message}") from exc
        if width <= 0 or height <= 0:
            raise InvalidInputError(f"frame.data: image header says {width}x{height}")
        return kind, width, height

    def _check_pixels(self, width: int, height: int) -> None:
        if width * height > self.limits.max_frame_pixels:
            raise LimitExceededError(
                f"frame: {width}x{height} is over the limit of {self.limits.max_frame_pixels} pixels"
            )

    def _time(self, media_time: float | None, field: str) -> float:
        now = self._clock()
        if self._first_arrival is None:
            self._first_arrival = now
        if media_time is None:
            return now - self._first_arrival
        if not math.isfinite(media_time) or media_time < 0:
            raise InvalidInputError(f"{field} must be a finite number of seconds >= 0, got {media_time}")
        return float(media_time)

    async def _put(self, item: _Message, size: int) -> None:
        # Fixed only by a message that passed validation: a rejected first
        # message does not decide the stream's mode.
        self.mode = "container" if isinstance(item, bytes) else "frames"
        await self._handoff.put(item, size)
        self.messages_in += 1

    def _frame_items(self, first: _Message) -> Iterator[MediaItem]:
        converter = AudioConverter(self.audio)
        item: _Message | None = first
        while item is not None:
            if isinstance(item, _Image):
                frame = _image_frame(item)
                if frame is None:
                    self.bad_packets += 1
                    yield BadPacket(item.media_time, "frame.data: undecodable image")
                else:
                    yield frame
            elif isinstance(item, _Raw):
                yield _raw_frame(item)
            elif isinstance(item, _Pcm):
                yield from converter.push_pcm(
                    item.data, rate=item.rate, channels=item.channels, media_time=item.media_time
                )
            item = self._handoff.get()
        if not self._stop.is_set():
            yield from converter.flush()

    def _container_items(self, first: bytes) -> Iterator[MediaItem]:
        pending: list[bytes] = [first]

        def take() -> _Message | None:
            return pending.pop() if pending else self._handoff.get()

        reader = _PipeReader(take)
        try:
            container = open_container(reader, description="pushed media stream")
        except Exception:
            if self._stop.is_set():
                return  # closed while probing: not the client's fault
            raise
        try:
            # Every decoded frame is held to the cap, not just the header's size.
            decoder = ContainerDecoder(container, audio=self.audio, should_stop=self._stop.is_set,
                                       max_pixels=self.limits.decode_pixel_cap, packet_sink=self.packet_sink)
            try:
                yield from decoder.items()
            finally:
                self.bad_packets += decoder.bad_packets
        finally:
            container.close()


def _image_frame(item: _Image) -> VideoFrame | None:
    """The VideoFrame of a pushed picture, or None when its body does not decode.

    A JPEG becomes a lazy frame like an MJPEG camera's: its body is verified
    at 1/8 scale (about a third of a full decode), and full-size pixels are
    decoded only if the frame is sampled, so a client pushing 30 fps sampled
    at 1 fps no longer pays 29 full decodes a second. A PNG has no reduced
    decode: it is decoded now, as before.
    """
    if item.kind == "jpeg":
        return jpeg_video_frame(item.data, media_time=item.media_time, verify=True)
    try:
        bgr = decode_image(item.data)
    except InvalidInputError:
        return None
    return VideoFrame.from_bgr(bgr, media_time=item.media_time)


def _raw_frame(item: _Raw) -> VideoFrame:
    """A lazy VideoFrame over validated raw pixels: conversion only when used."""
    pixels = raw_view(item.data, item.width, item.height, item.fmt)

    def load() -> np.ndarray:
        return to_bgr(pixels, item.fmt)

    def load_gray(width: int, height: int) -> np.ndarray:
        # Shrink first, then convert: the conversion touches only the thumbnail.
        return to_gray(cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA), item.fmt)

    return VideoFrame(
        media_time=item.media_time, width=item.width, height=item.height, loader=load, gray_loader=load_gray
    )
