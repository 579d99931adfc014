"""The Python client of the VisionStream service (the CLI uses it too).

One coroutine or async iterator per RPC, each opening its own channel::

    push_file(target, path)              Stream: push a media file, yield its session's events
    watch(target, source)                Watch: the server pulls a file or URL; yield its events
    subscribe(target, session_id)        Subscribe: follow a running session (after_seq= resumes)
    list_sessions(target)                ListSessions: the sessions this caller may see
    stop_session(target, session_id)     StopSession: stop one; returns its final SessionInfo
    snapshot(target, image_bytes)        AnalyzeSnapshot: one image in, one analysis out
    get_frames(target, session_id)       GetFrames: the sampled JPEGs by id or media span
    export_clip(target, session_id)      ExportClip: an MP4 of a media span, chunk by chunk

Events and session infos are the generated protobuf messages
(``vision_stream.v1.vision_stream_pb2``: ``pb.Event``, ``pb.SessionInfo``).
Errors are ``grpc.aio.AioRpcError`` with the server's status code and message
(``NOT_FOUND`` for an unknown session id, ``OUT_OF_RANGE`` when ``after_seq``
left the retention window, or frames/a span the session no longer holds, naming
what it holds), plus ``NotFoundError``/``UsageError`` for local
files and TLS settings. Example (the README's "Python client" section)::

    import asyncio
    from vision_stream import client

    async def main(server: str) -> None:
        for info in await client.list_sessions(server):          # what runs there
            print(info.session_id, info.source, info.state)
        async for event in client.subscribe(server, "sample-loop"):  # a camera's id is its name
            if event.HasField("detection"):
                print(f"{event.media_time:.1f}s {event.detection.label}")
                break

    asyncio.run(main("127.0.0.1:50051"))

Every call takes ``token=`` (sent as ``authorization: Bearer TOKEN`` metadata,
for a server started with ``--auth-tokens``) and ``tls=``: ``True`` for TLS
trusting the system's roots, or a :class:`ClientTls` naming a root CA file
and, for mTLS, a client certificate and key. Nothing here reads the environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from .conditions.model import Condition
from .config import SamplingPolicy
from .errors import InvalidInputError, NotFoundError, UsageError
from .proto import condition_to_proto, sampling_to_proto
from .redact import Secret
from .v1 import vision_stream_pb2 as pb
from .v1 import vision_stream_pb2_grpc as pb_grpc

CHUNK_BYTES = 64 * 1024


Token = str | Secret | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientTls:
    """TLS to the server: ``root_ca`` (PEM file; None = the system's roots) and,
    for a server that requires client certificates, ``cert`` and ``key``."""

    root_ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.cert is None) != (self.key is None):
            raise UsageError("a TLS client certificate needs its key, and the key its certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.root_ca, "TLS root CA"),
            private_key=_pem(self.key, "TLS client key"),
            certificate_chain=_pem(self.cert, "TLS client certificate"),
        )


def _pem(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what}: {exc.strerror or type(exc).__name__}") from exc


def channel(target: str, *, tls: bool | ClientTls = False) -> grpc.aio.Channel:
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    if tls is False:
        return grpc.aio.insecure_channel(target, options=options)
    settings = tls if isinstance(tls, ClientTls) else ClientTls()
    return grpc.aio.secure_channel(target, settings.credentials(), options=options)


def call_metadata(token: Token) -> tuple[tuple[str, str], ...] | None:
    """The per-call metadata carrying ``token`` (None without one)."""
    if not token:
        return None
    value = token.reveal() if isinstance(token, Secret) else token
    return (("authorization", f"Bearer {value}"),)


def file_duration(path: Path) -> float:
    """A media file's duration in seconds, from its container (0.0 when it does not say, or
    FFmpeg cannot read it: it only paces the upload, and the server names what is wrong)."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1_000_000
    except (av.error.FFmpegError, OSError, ValueError):
        return 0.0
    return 0.0


async def push_file(
    target: str, path: Path, *, sampling: SamplingPolicy | None = None, backend: str = "auto",
    commentary_interval: float = 0.0, fast: bool = False, session_id: str = "", token: Token = None,
    tls: bool | ClientTls = False, voice: str = "", media_resolution: str = "", tools: Sequence[str] = (),
    max_cost_per_hour: float = 0.0, max_tokens_per_hour: int = 0, conditions: Sequence[Condition] = (),
    persona: str = "", language: str = "",
) -> AsyncIterator[pb.Event]:
    """Push a media file's bytes as MediaChunks through ``Stream``; yield the session's events.

    ``voice``, ``media_resolution`` (``low``/``medium``) and ``tools`` (``google_search``)
    go in the SessionConfig; the server refuses what the model lacks (INVALID_ARGUMENT).

    Without ``fast`` the bytes are sent at the file's average bit rate, so the
    server sees roughly real-time input; with ``fast`` the session is lossless
    and gRPC flow control paces the upload.
    """
    if not await asyncio.to_thread(path.is_file):
        if await asyncio.to_thread(path.is_dir):
            raise InvalidInputError(f"{path} is a directory: give a media file (e.g. {path}/clip.mp4)")
        raise NotFoundError(f"no such file: {path}")
    duration = 0.0 if fast else await asyncio.to_thread(file_duration, path)
    size = (await asyncio.to_thread(path.stat)).st_size
    config = pb.SessionConfig(session_id=session_id, backend=backend, commentary_interval=commentary_interval,
                              lossless=fast, voice=voice, media_resolution=media_resolution, tools=list(tools),
                              max_cost_per_hour=max_cost_per_hour, max_tokens_per_hour=max_tokens_per_hour,
                              conditions=[condition_to_proto(c) for c in conditions], persona=persona,
                              language=language)
    if sampling is not None:
        config.sampling.CopyFrom(sampling_to_proto(sampling))

    admitted, ended = asyncio.Event(), asyncio.Event()

    async def requests() -> AsyncIterator[pb.StreamRequest]:
        yield pb.StreamRequest(config=config)
        # Media only once the server has admitted the session (its first event):
        # grpc.aio's client reports INTERNAL "Internal error from Core" instead of
        # the server's status when a write fails after the server ended the call
        # (grpc#36066), e.g. UNAUTHENTICATED or a session limit.
        await admitted.wait()
        if ended.is_set():
            return
        start = time.monotonic()
        sent = 0
        with path.open("rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                if duration > 0:
                    due = sent / size * duration
                    delay = due - (time.monotonic() - start)
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield pb.StreamRequest(media=pb.MediaChunk(data=chunk))
                sent += len(chunk)

    async with channel(target, tls=tls) as ch:
        call = pb_grpc.VisionStreamStub(ch).Stream(requests(), metadata=call_metadata(token))
        call.add_done_callback(lambda _: _set_all(ended, admitted))  # a refused call ends the generator
        async for event in call:
            admitted.set()
            yield event


def _set_all(*events: asyncio.Event) -> None:
    for event in events:
        event.set()


async def watch(
    target: str, source: str, *, fast: bool = False, detach: bool = False, backend: str = "auto",
    commentary_interval: float = 0.0, token: Token = None, tls: bool | ClientTls = False, voice: str = "",
    media_resolution: str = "", tools: Sequence[str] = (), max_cost_per_hour: float = 0.0,
    max_tokens_per_hour: int = 0, conditions: Sequence[Condition] = (),
) -> AsyncIterator[pb.Event]:
    """Ask the server to pull ``source`` (a path under its media root, or a URL it allows); yield the events.

    ``voice``, ``media_resolution`` and ``tools``: as for :func:`push_file`.

    The session stops when this call ends, unless ``detach`` (then stop it with :func:`stop_session`).
    """
    request = pb.WatchRequest(source=source, fast=fast, detach=detach,
                              config=pb.SessionConfig(backend=backend, commentary_interval=commentary_interval,
                                                      voice=voice, media_resolution=media_resolution,
                                                      tools=list(tools), max_cost_per_hour=max_cost_per_hour,
                                                      max_tokens_per_hour=max_tokens_per_hour,
                                                      conditions=[condition_to_proto(c) for c in conditions]))
    async with channel(target, tls=tls) as ch:
        async for event in pb_grpc.VisionStreamStub(ch).Watch(request, metadata=call_metadata(token)):
            yield event


async def snapshot(target: str, image: bytes, *, prompt: str = "", backend: str = "auto", token: Token = None,
                   tls: bool | ClientTls = False) -> pb.SnapshotResponse:
    """Analyse one encoded image (JPEG/PNG bytes), with an optional question about it."""
    request = pb.SnapshotRequest(image=pb.VideoFrame(data=image), prompt=prompt, backend=backend)
    async with channel(target, tls=tls) as ch:
        return await pb_grpc.VisionStreamStub(ch).AnalyzeSnapshot(request, metadata=call_metadata(token))


async def subscribe(
    target: str, session_id: str, *, after_seq: int = 0, allow_gap: bool = False, token: Token = None,
    tls: bool | ClientTls = False,
) -> AsyncIterator[pb.Event]:
    """Follow a session's events with seq > ``after_seq`` (0: from the oldest retained), then live.

    Ends after the session's ``session_ended``. Resuming with the last seq seen
    misses nothing and repeats nothing; ``allow_gap`` continues from the oldest
    retained event instead of failing (OUT_OF_RANGE) when some already left.
    """
    request = pb.SubscribeRequest(session_id=session_id, after_seq=after_seq, allow_gap=allow_gap)
    async with channel(target, tls=tls) as ch:
        async for event in pb_grpc.VisionStreamStub(ch).Subscribe(request, metadata=call_metadata(token)):
            yield event


async def list_sessions(target: str, *, token: Token = None, tls: bool | ClientTls = False) -> list[pb.SessionInfo]:
    """The sessions the caller may see (running, and recently ended ones while the server keeps them)."""
    async with channel(target, tls=tls) as ch:
        response = await pb_grpc.VisionStreamStub(ch).ListSessions(pb.ListSessionsRequest(),
                                                                    metadata=call_metadata(token))
    return list(response.sessions)


async def stop_session(target: str, session_id: str, *, token: Token = None,
                       tls: bool | ClientTls = False) -> pb.SessionInfo:
    """Stop a session (its subscribers get ``session_ended``, reason ``stopped``); returns its final info."""
    async with channel(target, tls=tls) as ch:
        response = await pb_grpc.VisionStreamStub(ch).StopSession(pb.StopSessionRequest(session_id=session_id),
                                                                   metadata=call_metadata(token))
    return response.session


@dataclass(frozen=True, slots=True)
class Frames:
    """GetFrames' answer: the frames, oldest first, and how many matched but were left
    out (the server's per-call cap or message size; ask again for the rest)."""

    frames: list[pb.SampledFrame]
    omitted: int


async def get_frames(
    target: str, session_id: str, *, frame_ids: Sequence[int] = (), from_media_time: float = 0.0,
    to_media_time: float = 0.0, max_frames: int = 0, token: Token = None, tls: bool | ClientTls = False,
) -> Frames:
    """The JPEGs a session's backend received: by ``frame_ids`` (events' ``frame_ids``), else
    the media span ``[from_media_time, to_media_time]`` (both 0: the newest ones).

    An id or span the session no longer holds is ``OUT_OF_RANGE`` naming what it holds.
    """
    from .evidence import FRAMES_OMITTED_TRAILER  # the server's name for the count (imports PyAV: lazily)

    request = pb.GetFramesRequest(session_id=session_id, frame_ids=list(frame_ids), from_media_time=from_media_time,
                                  to_media_time=to_media_time, max_frames=max_frames)
    async with channel(target, tls=tls) as ch:
        call = pb_grpc.VisionStreamStub(ch).GetFrames(request, metadata=call_metadata(token))
        response = await call
        trailers = await call.trailing_metadata()
    omitted = dict(trailers or ()).get(FRAMES_OMITTED_TRAILER, "0")
    return Frames(list(response.frames), int(omitted) if str(omitted).isdigit() else 0)


async def export_clip(
    target: str, session_id: str, *, from_media_time: float = 0.0, to_media_time: float = 0.0,
    token: Token = None, tls: bool | ClientTls = False,
) -> AsyncIterator[pb.ClipChunk]:
    """An MP4 of media ``[from_media_time, to_media_time]`` (``to`` 0: up to the newest): the
    source's packets remuxed from the keyframe before ``from`` (no re-encoding), or for a
    frame-only source the sampled JPEGs as MJPEG. Yields chunks; the first says the span
    actually covered, the MIME type and ``from_sampled_frames``. Concatenate ``data``."""
    request = pb.ExportClipRequest(session_id=session_id, from_media_time=from_media_time,
                                   to_media_time=to_media_time)
    async with channel(target, tls=tls) as ch:
        async for chunk in pb_grpc.VisionStreamStub(ch).ExportClip(request, metadata=call_metadata(token)):
            yield chunk
