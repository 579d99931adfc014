"""A small asyncio client for the VisionStream service (used by the CLI and samples).

Every call takes ``token=`` (sent as ``authorization: Bearer TOKEN`` metadata,
for a server started with ``--auth-tokens``) and ``tls=``: ``True`` for TLS
trusting the system's roots, or a :class:`ClientTls` naming a root CA file
and, for mTLS, a client certificate and key. Nothing here reads the environment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from .config import SamplingPolicy
from .errors import NotFoundError, UsageError
from .proto import sampling_to_proto
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


def _duration_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        if container.duration:
            return container.duration / 1_000_000
    return 0.0


async def push_file(
    target: str, path: Path, *, sampling: SamplingPolicy | None = None, backend: str = "auto",
    commentary_interval: float = 0.0, fast: bool = False, session_id: str = "", token: Token = None,
    tls: bool | ClientTls = False,
) -> AsyncIterator[pb.Event]:
    """Push a media file's bytes as MediaChunks through ``Stream``; yield the session's events.

    Without ``fast`` the bytes are sent at the file's average bit rate, so the
    server sees roughly real-time input; with ``fast`` the session is lossless
    and gRPC flow control paces the upload.
    """
    if not await asyncio.to_thread(path.is_file):
        raise NotFoundError(f"no such file: {path}")
    duration = 0.0 if fast else await asyncio.to_thread(_duration_seconds, path)
    size = (await asyncio.to_thread(path.stat)).st_size
    config = pb.SessionConfig(session_id=session_id, backend=backend, commentary_interval=commentary_interval,
                              lossless=fast)
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
    commentary_interval: float = 0.0, token: Token = None, tls: bool | ClientTls = False,
) -> AsyncIterator[pb.Event]:
    request = pb.WatchRequest(source=source, fast=fast, detach=detach,
                              config=pb.SessionConfig(backend=backend, commentary_interval=commentary_interval))
    async with channel(target, tls=tls) as ch:
        async for event in pb_grpc.VisionStreamStub(ch).Watch(request, metadata=call_metadata(token)):
            yield event


async def snapshot(target: str, image: bytes, *, prompt: str = "", backend: str = "auto", token: Token = None,
                   tls: bool | ClientTls = False) -> pb.SnapshotResponse:
    request = pb.SnapshotRequest(image=pb.VideoFrame(data=image), prompt=prompt, backend=backend)
    async with channel(target, tls=tls) as ch:
        return await pb_grpc.VisionStreamStub(ch).AnalyzeSnapshot(request, metadata=call_metadata(token))
