"""The Live backend's evidence (issue 12 item 3): a Watch with the Live backend against the
emulator (vision_stream.testing.LiveEmulator, on loopback), whose commentary frame ids resolve
through GetFrames to the very JPEGs the emulator received: the emulator keeps the SHA-256 of
every frame in arrival order (``EmulatedSession.frame_hashes``), and a lossless (--fast)
session sends every sampled frame, so frame id N is the emulator's N-th frame."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers.server import Served, serve
from helpers.timing import scaled

from vision_stream import client
from vision_stream.backends.factory import BackendOptions
from vision_stream.config import Limits
from vision_stream.redact import Secret
from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig
from vision_stream.testing import EmulatorKnobs, LiveEmulator
from vision_stream.v1 import vision_stream_pb2 as pb

KEY = "AIzaTEST-evidence-key-0123456789"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
async def live_served(media_root: Path) -> AsyncIterator[tuple[Served, LiveEmulator]]:
    async with LiveEmulator(EmulatorKnobs(api_keys=(KEY,))) as live:
        options = BackendOptions(api_key=Secret(KEY), live_url=live.url)
        config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=2),
                               backends=options)
        async for served in serve(config, media_root):
            yield served, live


@pytest.mark.slow  # about 6 s: a 12 s clip through Live turns, lossless
async def test_live_commentary_frame_ids_are_the_frames_the_emulator_received(
        live_served: tuple[Served, LiveEmulator]) -> None:
    served, live = live_served
    config = pb.SessionConfig(backend="live", commentary_interval=2)
    events = [e async for e in served.stub.Watch(pb.WatchRequest(source="sample.mp4", fast=True, config=config),
                                                 timeout=scaled(60))]
    session_id = events[0].session_id
    assert not [e.error.message for e in events if e.HasField("error")]
    received = [h for s in live.sessions.values() for h in s.frame_hashes]
    assert received, "the emulator received frames"

    # Every frame the session holds, in id order, is what the emulator received, in order.
    target = f"127.0.0.1:{served.running.port}"
    held = await client.get_frames(target, session_id, from_media_time=0.0, to_media_time=1e9)
    assert held.omitted == 0 and [f.frame_id for f in held.frames] == list(range(1, len(received) + 1))
    assert [sha(f.jpeg) for f in held.frames] == received

    commentary = [e.commentary for e in events
                  if e.HasField("commentary") and e.commentary.final and e.commentary.backend == "live"]
    assert len(commentary) >= 2 and all(c.frame_ids for c in commentary), "every Live turn names its frames"
    for c in commentary:
        ids = list(c.frame_ids)
        answer = await client.get_frames(target, session_id, frame_ids=ids)
        assert [f.frame_id for f in answer.frames] == sorted(ids)
        # Frame id N is the emulator's N-th frame: the JPEG the model was sent, byte for byte.
        assert [sha(f.jpeg) for f in answer.frames] == [received[i - 1] for i in sorted(ids)]
