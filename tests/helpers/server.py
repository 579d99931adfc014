"""A real grpc.aio server on a free loopback port, a stub to call it, tokens, and checks on event lists.

The fixtures ``media_root`` (tests/conftest.py) and ``served`` (tests/server/conftest.py) use these."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from helpers.paths import SAMPLES
from vision_stream.client import ClientTls, channel
from vision_stream.server.app import RunningServer, start_server
from vision_stream.server.auth import new_token, token_digest, token_toml
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc


@dataclass
class Served:
    running: RunningServer
    channel: grpc.aio.Channel
    stub: pb_grpc.VisionStreamStub
    media_root: Path


def fill_media_root(root: Path) -> Path:
    """``root`` (created) holding the sample clip and still, the files Watch tests name."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "sample.mp4", root / "sample.mp4")
    shutil.copy(SAMPLES / "still.jpg", root / "still.jpg")
    return root


async def serve(config: ServiceConfig, media_root: Path, *, client_tls: bool | ClientTls = False,
                 **server_options: Any) -> AsyncIterator[Served]:
    """Serve on loopback; ``server_options`` go to start_server (tokens=, tls=, cameras=),
    ``client_tls`` to the harness's own channel (vision_stream.client.channel)."""
    running = await start_server(config, host="127.0.0.1", port=0, **server_options)
    ch = channel(f"127.0.0.1:{running.port}", tls=client_tls)
    try:
        yield Served(running, ch, pb_grpc.VisionStreamStub(ch), media_root)
    finally:
        await ch.close()
        await running.stop(grace=5.0)


# ``async with serving(config, media_root, ...) as served``: the same server, for a test that
# serves inside its own context rather than from a fixture.
serving = contextlib.asynccontextmanager(serve)


def write_tokens(path: Path, rights: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Write a tokens file (the real TOML format) with a fresh token per name; returns name -> token."""
    tokens = {name: new_token() for name in rights}
    path.write_text("".join(token_toml(name, token_digest(tokens[name]), r) for name, r in rights.items()))
    return tokens


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def kinds(events: list[pb.Event]) -> list[str]:
    """Each event's payload name ("" for none)."""
    return [e.WhichOneof("payload") or "" for e in events]


def assert_gap_free(events: list[pb.Event], *, first: int | None = 1) -> None:
    """Seqs run ``first``, ``first + 1``, ... with no gap; ``first=None``: from the first event's seq
    (a viewer that joined a running camera)."""
    seqs = [e.seq for e in events]
    start = seqs[0] if first is None and seqs else (first or 1)
    assert seqs == list(range(start, start + len(seqs))), f"seq not gap-free: {seqs[:20]}..."
