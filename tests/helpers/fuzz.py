"""The fuzz suite's harness: one real grpc.aio server on loopback in its own event-loop thread,
bounded calls that turn every RPC into an :class:`Outcome`, the properties every outcome must
have, a canary session that must not notice the fuzzing, and the report for the closing note.

Why a thread: hypothesis drives synchronous test functions, while the server must live for the
whole module (one server, one canary, one RSS baseline). The server still runs in this process,
so ``/proc/self/status`` measures it.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import io
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import av
import grpc
from google.protobuf import text_format
from google.protobuf.message import Message

from helpers.paths import SAMPLES
from helpers.server import fill_media_root
from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.app import RunningServer, start_server
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

T = TypeVar("T")

# What a client may see (issue 9, item 7). DEADLINE_EXCEEDED is the server's idle timeout;
# a call that outlives our own bound is reported as a hang, not as this code.
DOCUMENTED = frozenset({
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE,
})
MAX_MESSAGE_CHARS = 1024
CALL_BOUND = 10.0  # seconds a fuzzed call may take before it counts as a hang
REPORT_PATH = Path("/tmp/vision_stream_fuzz_report.json")


def rss_mib() -> float:
    """This process's resident set (the server runs here), after a full collection and a
    malloc_trim: glibc keeps freed heap pages of its arenas mapped, which is the allocator's
    cache, not memory the server still holds."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: measure as is
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# ------------------------------------------------------------------ outcomes


@dataclass
class Outcome:
    """How one fuzzed call ended, as the client saw it."""

    target: str
    code: grpc.StatusCode | None = None  # None: it did not end within the bound (a hang)
    details: str = ""
    elapsed: float = 0.0
    events: int = 0
    error_events: list[str] = field(default_factory=list)
    ended_by_client: bool = False  # a following stream we cancelled on purpose after it started
    last_event: str | None = None  # the payload kind of the last event received
    totals: pb.Stats | None = None  # session_ended.totals, when the session_ended event came

    @property
    def hung(self) -> bool:
        return self.code is None


def violations(outcome: Outcome, secrets: Iterable[str]) -> list[str]:
    """The properties every fuzzed call must have; an empty list when it has them all."""
    found: list[str] = []
    if outcome.hung:
        found.append(f"did not end within {CALL_BOUND:.0f} s")
        return found
    assert outcome.code is not None
    if outcome.code not in DOCUMENTED:
        found.append(f"undocumented status {outcome.code.name}: {outcome.details[:300]!r}")
    if "metadata size exceeds" in outcome.details:
        # The client's own words: the server's status message was longer than gRPC's
        # metadata limit (16 KiB), i.e. it echoed unbounded input.
        found.append(f"the server's status message was over gRPC's metadata limit: {outcome.details!r}")
    if outcome.events and outcome.last_event != "session_ended" and not outcome.ended_by_client:
        found.append(f"the event stream ended with {outcome.last_event}, not session_ended")
    texts = [("status message", outcome.details)] + [("error event", m) for m in outcome.error_events]
    for what, text in texts:
        if len(text) > MAX_MESSAGE_CHARS:
            found.append(f"{what} has {len(text)} chars (bound {MAX_MESSAGE_CHARS}): {text[:120]!r}...")
        for secret in secrets:
            if secret in text:
                found.append(f"{what} shows the media root path: {text[:300]!r}")
    return found


class Report:
    """Cases tried per target, their status codes, violations and RSS, for the closing note."""

    def __init__(self) -> None:
        self.codes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.slowest: dict[str, float] = collections.defaultdict(float)
        self.violations: list[dict[str, str]] = []
        self.numbers: dict[str, Any] = {}

    def add(self, outcome: Outcome, problems: list[str], example: str) -> None:
        name = "HANG" if outcome.code is None else outcome.code.name
        self.codes[outcome.target][name] += 1
        self.slowest[outcome.target] = max(self.slowest[outcome.target], outcome.elapsed)
        for problem in problems:
            if len(self.violations) < 200:
                self.violations.append({"target": outcome.target, "problem": problem, "example": example[:600]})

    def as_dict(self) -> dict[str, Any]:
        total = collections.Counter[str]()
        for counter in self.codes.values():
            total.update(counter)
        return {
            "cases": {target: sum(c.values()) for target, c in sorted(self.codes.items())},
            "total_cases": sum(total.values()),
            "codes": {target: dict(c.most_common()) for target, c in sorted(self.codes.items())},
            "codes_total": dict(total.most_common()),
            "slowest_call_s": {t: round(s, 3) for t, s in sorted(self.slowest.items())},
            "violations": self.violations,
            **self.numbers,
        }

    def write(self, path: Path = REPORT_PATH) -> None:
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")


def brief(message: Message) -> str:
    """One line of text format with every long string/bytes field cut (examples may hold
    megabytes); enough to rebuild the reproducer."""
    copy = type(message)()
    copy.CopyFrom(message)
    _cut(copy)
    return text_format.MessageToString(copy, as_one_line=True)


def _cut(message: Message) -> None:
    for fd, value in message.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            for item in (value if fd.is_repeated else [value]):
                _cut(item)
        elif fd.type in (fd.TYPE_STRING, fd.TYPE_BYTES) and not fd.is_repeated and len(value) > 80:
            marker = f"...[{len(value)} {'chars' if fd.type == fd.TYPE_STRING else 'bytes'}]"
            setattr(message, fd.name, value[:60] + (marker if fd.type == fd.TYPE_STRING else marker.encode()))


# ------------------------------------------------------------------ the server


class FuzzServer:
    """A grpc.aio server (backend "local", files under ``media_root``) and a client channel,
    both on a private event loop in a daemon thread; :meth:`run` submits a coroutine to it."""

    def __init__(self, media_root: Path, limits: Limits) -> None:
        self.media_root = media_root
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self._thread.start()
        self.config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=limits)
        self.running: RunningServer = self.run(start_server(self.config, host="127.0.0.1", port=0), 30)
        self.channel: grpc.aio.Channel = self.run(self._connect(), 10)
        self.stub = pb_grpc.VisionStreamStub(self.channel)
        self.sync_channel = grpc.insecure_channel(f"127.0.0.1:{self.running.port}", options=self._options())
        self.sync_stub = pb_grpc.VisionStreamStub(self.sync_channel)

    async def _connect(self) -> grpc.aio.Channel:
        # Created on the server's loop: a grpc.aio channel belongs to the loop it was made on.
        # Loopback only: the fuzz never reaches beyond 127.0.0.1.
        return grpc.aio.insecure_channel(f"127.0.0.1:{self.running.port}", options=self._options())

    def _options(self) -> list[tuple[str, int]]:
        # The client may send more than the server accepts: oversize is the server's to refuse.
        max_bytes = self.config.limits.max_message_bytes + 1024 * 1024
        return [("grpc.max_send_message_length", max_bytes), ("grpc.max_receive_message_length", max_bytes)]

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the server loop; the hard stop if something wedges beyond our own bounds."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def secrets(self) -> list[str]:
        """Strings no client may ever see: the media root's absolute path, as given and resolved."""
        return sorted({str(self.media_root), str(self.media_root.resolve()), str(self.media_root.parent)})

    def close(self) -> None:
        async def shut() -> None:
            await self.channel.close()
            await self.running.stop(grace=5.0)

        try:
            self.sync_channel.close()
            self.run(shut(), 20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():  # else it still runs: closing would raise, leave it to exit
                self.loop.close()  # its self-pipe sockets too (ResourceWarning at exit otherwise)


# ------------------------------------------------------------------ bounded calls


async def _bounded(outcome: Outcome, consume: Callable[[], Awaitable[None]], call: Any, bound: float) -> Outcome:
    """Run ``consume`` under ``bound`` seconds; record the status, or a hang (then cancel the call)."""
    start = time.monotonic()
    try:
        await asyncio.wait_for(consume(), bound)
        outcome.code = grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        outcome.code, outcome.details = exc.code(), exc.details() or ""
    except TimeoutError:
        outcome.code = None
        call.cancel()
    outcome.elapsed = time.monotonic() - start
    return outcome


def _note(outcome: Outcome, event: pb.Event) -> None:
    outcome.events += 1
    outcome.last_event = event.WhichOneof("payload")
    if event.HasField("error"):
        outcome.error_events.append(event.error.message)
    if event.HasField("session_ended"):
        outcome.totals = event.session_ended.totals


def _sync_stream(call: Any, outcome: Outcome) -> None:
    for event in call:
        _note(outcome, event)


async def stream(stub: pb_grpc.VisionStreamStub, messages: list[pb.StreamRequest],
                 bound: float = CALL_BOUND) -> Outcome:
    """Send ``messages`` then half-close; read every event until the call ends.

    ``stub`` is a *synchronous* stub (FuzzServer.sync_stub), read in a worker thread: when a
    server ends a Stream while the client is still writing, grpc.aio's client replaces the
    server's status with INTERNAL "Internal error from Core" (grpc/grpc#36066, fix in PR
    #43486), which would hide the code our server really sent; the sync client reports it.
    """
    outcome = Outcome("Stream")
    # The gRPC deadline is a backstop a little beyond our own bound, so a server-side
    # DEADLINE_EXCEEDED (idle timeout) and our hang detection cannot be confused.
    call = stub.Stream(iter(messages), timeout=bound + 5)
    start = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.to_thread(_sync_stream, call, outcome), bound)
        outcome.code = grpc.StatusCode.OK
    except grpc.RpcError as exc:
        outcome.code, outcome.details = exc.code(), exc.details() or ""
    except TimeoutError:
        outcome.code = None
        call.cancel()  # the worker thread's iteration then ends with CANCELLED
    outcome.elapsed = time.monotonic() - start
    return outcome


async def follow(target: str, call: Any, follow_for: float, bound: float = CALL_BOUND) -> Outcome:
    """Read a Watch/Subscribe stream; once it has run ``follow_for`` seconds without ending,
    cancel it ourselves (a live session legitimately follows forever)."""
    outcome = Outcome(target)
    start = time.monotonic()

    async def consume() -> None:
        iterator = aiter(call)
        while True:
            left = follow_for - (time.monotonic() - start)
            if left <= 0:
                outcome.ended_by_client = True
                call.cancel()
                return
            try:
                event = await asyncio.wait_for(anext(iterator), left)
            except StopAsyncIteration:
                return
            except TimeoutError:
                continue
            _note(outcome, event)

    return await _bounded(outcome, consume, call, bound)


async def unary(target: str, call: Awaitable[Any], bound: float = CALL_BOUND) -> Outcome:
    outcome = Outcome(target)

    async def consume() -> None:
        await call

    return await _bounded(outcome, consume, call, bound)


async def stop_strays(stub: pb_grpc.VisionStreamStub, keep: str) -> int:
    """Stop every running session but ``keep`` (detached Watches the fuzz started); how many."""
    listed = await stub.ListSessions(pb.ListSessionsRequest(), timeout=5)
    strays = [s.session_id for s in listed.sessions if s.session_id != keep and s.state not in ("ended", "failed")]
    for session_id in strays:
        try:
            await stub.StopSession(pb.StopSessionRequest(session_id=session_id), timeout=5)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
    return len(strays)


# ------------------------------------------------------------------ the canary


class Canary:
    """A looping Watch of sample.mp4, paced, started before the fuzzing and read throughout:
    its seq must keep growing without gaps, and it must end normally when stopped."""

    def __init__(self, server: FuzzServer, session_id: str = "fuzz-canary") -> None:
        self.server = server
        self.session_id = session_id
        self.seqs: list[int] = []
        self.arrivals: list[float] = []  # time.monotonic() of each event
        self.end: pb.SessionEnded | None = None
        self.failure: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        config = pb.SessionConfig(session_id=self.session_id, backend="local", commentary_interval=1)
        call = self.server.stub.Watch(pb.WatchRequest(source="sample.mp4", loop=True, config=config))
        try:
            async for event in call:
                self.seqs.append(event.seq)
                self.arrivals.append(time.monotonic())
                if event.HasField("session_ended"):
                    self.end = event.session_ended
        except grpc.aio.AioRpcError as exc:
            self.failure = f"{exc.code().name}: {exc.details()}"

    def start(self) -> None:
        async def go() -> None:
            self._task = asyncio.create_task(self._read(), name="fuzz-canary")
            for _ in range(100):
                if self.seqs:
                    return
                await asyncio.sleep(0.05)

        self.server.run(go(), 15)
        assert self.seqs, "the canary Watch produced no first event"

    def max_gap(self) -> float:
        """The longest wait between two canary events so far, up to now."""
        times = [*self.arrivals, time.monotonic()]
        return max(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else 0.0

    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def stop(self) -> None:
        """StopSession, then wait for the canary's own stream to end."""
        async def go() -> None:
            await self.server.stub.StopSession(pb.StopSessionRequest(session_id=self.session_id), timeout=10)
            assert self._task is not None
            await asyncio.wait_for(self._task, 10)

        self.server.run(go(), 25)


# ------------------------------------------------------------------ media


def _remux(source: bytes, fmt: str, seconds: float, options: dict[str, str] | None = None) -> bytes:
    """The first ``seconds`` of ``source``'s streams copied (no re-encode) into container ``fmt``."""
    out = io.BytesIO()
    with av.open(io.BytesIO(source)) as src, av.open(out, "w", format=fmt, options=options or {}) as dst:
        mapping = {s.index: dst.add_stream_from_template(s) for s in src.streams if s.type in ("video", "audio")}
        for packet in src.demux(*[s for s in src.streams if s.index in mapping]):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.time_base is not None and packet.pts * packet.time_base > seconds:
                continue
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)
    return out.getvalue()


@dataclass(frozen=True)
class Seeds:
    """Real bytes the mutations start from, made once per module."""

    clips: dict[str, bytes]
    jpeg: bytes
    png: bytes


def make_seeds() -> Seeds:
    """sample.mp4, plus ~1.5 s of it remuxed to MPEG-TS, Matroska and fragmented MP4; still.jpg and
    a small PNG of it (via OpenCV, the server's own image codec)."""
    import cv2
    import numpy as np

    mp4 = (SAMPLES / "sample.mp4").read_bytes()
    jpeg = (SAMPLES / "still.jpg").read_bytes()
    clips = {
        "mp4": mp4,
        "mpegts": _remux(mp4, "mpegts", 1.5),
        "matroska": _remux(mp4, "matroska", 1.5),
        "fmp4": _remux(mp4, "mp4", 1.5, {"movflags": "frag_keyframe+empty_moov+default_base_moof"}),
    }
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    ok, png = cv2.imencode(".png", cv2.resize(image, (96, 72)))
    assert ok
    return Seeds(clips=clips, jpeg=jpeg, png=png.tobytes())


def copy_media(root: Path) -> None:
    """The media root the Watch fuzz runs against: the sample clip and still, and a sub-folder."""
    fill_media_root(root)
    (root / "sub").mkdir(exist_ok=True)


def jpeg_header(width: int, height: int) -> bytes:
    """A syntactically valid baseline-JPEG start (SOI, DQT, SOF0 with the given size, DHT, SOS)
    followed by a few bytes of scan data: decoders read the size from SOF0 before any pixels."""
    dqt = b"\xff\xdb\x00\x43\x00" + bytes([1] * 64)
    sof = b"\xff\xc0\x00\x0b\x08" + height.to_bytes(2, "big") + width.to_bytes(2, "big") + b"\x01\x01\x11\x00"
    dht = b"\xff\xc4\x00\x14\x00" + bytes([1] + [0] * 15) + b"\x00"
    sos = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + dqt + sof + dht + sos + b"\x00" * 64 + b"\xff\xd9"


def png_header(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR of the given size and one tiny (wrong-sized) IDAT."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


__all__ = [
    "CALL_BOUND",
    "DOCUMENTED",
    "REPORT_PATH",
    "Canary",
    "FuzzServer",
    "Outcome",
    "Report",
    "Seeds",
    "brief",
    "copy_media",
    "follow",
    "jpeg_header",
    "make_seeds",
    "png_header",
    "rss_mib",
    "stop_strays",
    "stream",
    "unary",
    "violations",
]
