"""``vision-stream frames --session`` and ``vision-stream clip`` (issue 12 item 3) as a user runs
them (a subprocess) against a real server on loopback, and the client calls they stand on
(``client.get_frames``, ``client.export_clip``): the JPEGs written are those GetFrames holds,
the clip is the source's packets remuxed, and what the session no longer holds is one line
naming what it does (exit code 1)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import av
import grpc
import pytest
from helpers.paths import SAMPLES
from helpers.server import Served, serve
from helpers.timing import scaled

from vision_stream import client
from vision_stream.backends.factory import BackendOptions
from vision_stream.config import Limits
from vision_stream.errors import CameraConfigError
from vision_stream.server.access import SourceAccess
from vision_stream.server.cameras import load_cameras, parse_cameras
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb

CLI = [sys.executable, "-m", "vision_stream.cli"]
FAST = pb.SessionConfig(commentary_interval=4, backend="local")


async def run_cli(*args: str, within: float = 30) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = await asyncio.create_subprocess_exec(*CLI, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), scaled(within))
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def watched(served: Served, source: str = "sample.mp4") -> str:
    """Watch ``source`` to its end (--fast, offline analyzer); the session's id (its evidence stays)."""
    events = [e async for e in served.stub.Watch(pb.WatchRequest(source=source, fast=True, config=FAST))]
    return events[0].session_id


def target(served: Served) -> str:
    return f"127.0.0.1:{served.running.port}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_frames_session_writes_the_jpegs_get_frames_holds(served: Served, tmp_path: Path) -> None:
    session_id = await watched(served)
    held = await client.get_frames(target(served), session_id, from_media_time=0.0, to_media_time=1e9)
    assert held.frames and held.omitted == 0

    out = tmp_path / "all"
    code, stdout, err = await run_cli("frames", "--session", session_id, "--out", str(out), "--server", target(served))
    assert code == 0, err
    written = sorted(out.iterdir())
    assert [sha(p.read_bytes()) for p in written] == [sha(f.jpeg) for f in held.frames]
    first = held.frames[0]
    assert written[0].name == f"{first.frame_id:05d}_{first.media_time:09.3f}s_frame.jpg"
    assert f"wrote {len(held.frames)} JPEG frames of session {session_id}" in stdout

    picked = [held.frames[1].frame_id, held.frames[3].frame_id]
    code, stdout, err = await run_cli("frames", "--session", session_id, "--ids", ",".join(map(str, picked)),
                                      "--out", str(tmp_path / "ids"), "--server", target(served))
    assert code == 0, err
    assert sorted(int(p.name.split("_")[0]) for p in (tmp_path / "ids").iterdir()) == picked

    code, stdout, err = await run_cli("frames", "--session", session_id, "--from", "1", "--to", "2",
                                      "--out", str(tmp_path / "span"), "--server", target(served))
    assert code == 0, err
    times = [float(p.name.split("_")[1][:-1]) for p in (tmp_path / "span").iterdir()]
    assert times and all(1.0 <= t <= 2.0 for t in times)


async def test_clip_writes_the_remuxed_mp4_and_refuses_what_is_not_held(served: Served, tmp_path: Path) -> None:
    session_id = await watched(served)
    out = tmp_path / "clip.mp4"
    code, stdout, err = await run_cli("clip", session_id, "--from", "1", "--to", "3", "--out", str(out),
                                      "--server", target(served))
    assert code == 0, err
    assert "remuxed from the source's packets" in stdout and not (tmp_path / "clip.mp4.partial").exists()
    with av.open(str(out)) as clip:
        times = [float(f.time) for f in clip.decode(clip.streams.video[0]) if f.time is not None]
    assert times and max(times) >= 1.9  # from the keyframe at or before 1 s through 3 s
    # The same bytes the client API streams.
    chunks = [c async for c in client.export_clip(target(served), session_id, from_media_time=1.0,
                                                  to_media_time=3.0)]
    assert b"".join(c.data for c in chunks) == out.read_bytes() and not chunks[0].from_sampled_frames

    code, stdout, err = await run_cli("clip", session_id, "--from", "500", "--to", "510", "--out",
                                      str(tmp_path / "late.mp4"), "--server", target(served))
    assert code == 1 and not stdout
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "OUT_OF_RANGE" in lines[0] and "video packets for media 0.000-" in lines[0]
    assert not (tmp_path / "late.mp4").exists() and not (tmp_path / "late.mp4.partial").exists()

    code, _, err = await run_cli("frames", "--session", session_id, "--ids", "99999", "--out",
                                 str(tmp_path / "none"), "--server", target(served))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "the session holds frames 1-" in err

    code, _, err = await run_cli("clip", session_id, "--out", str(out), "--server", target(served))
    assert code == 2 and "exists" in err  # no silent overwrite


async def test_frames_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args, words in [
        (["frames", "--out", str(tmp_path / "a")], "needs a SOURCE"),
        (["frames", "x.mp4", "--session", "s", "--out", str(tmp_path / "b")], "not both"),
        (["frames", "x.mp4", "--ids", "1", "--out", str(tmp_path / "c")], "add --session"),
        (["frames", "--session", "s", "--ids", "1,x", "--out", str(tmp_path / "d")], "whole numbers"),
        (["frames", "--session", "s", "--fps", "2", "--out", str(tmp_path / "e")], "sampling flags"),
        (["clip", "s", "--from", "3", "--to", "1", "--out", str(tmp_path / "f.mp4")], "before --from"),
    ]:
        code, _, err = await run_cli(*args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, (args, err)


@pytest.fixture
async def small_messages(media_root: Path) -> AsyncIterator[Served]:
    """A server whose messages hold only a few sampled JPEGs: GetFrames must leave some out."""
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_message_bytes=40_000))
    async for s in serve(config, media_root):
        yield s


async def test_frames_left_out_by_the_server_are_asked_for_again(small_messages: Served, tmp_path: Path) -> None:
    session_id = await watched(small_messages)
    page = await client.get_frames(target(small_messages), session_id, from_media_time=0.0, to_media_time=1e9)
    assert page.omitted > 0 and page.frames  # the trailer's count reaches the client
    code, _, err = await run_cli("frames", "--session", session_id, "--out", str(tmp_path / "all"),
                                 "--server", target(small_messages))
    assert code == 0, err
    ids = sorted(int(p.name.split("_")[0]) for p in (tmp_path / "all").iterdir())
    assert len(ids) == len(page.frames) + page.omitted and ids == list(range(ids[0], ids[-1] + 1))
    one = (tmp_path / "all").iterdir().__next__().read_bytes()
    with av.open(io.BytesIO(one), format="jpeg_pipe") as jpeg:
        assert jpeg.streams.video[0].codec_context.name == "mjpeg"


# ---------------------------------------------------------------- evidence bounds: serve flags, camera keys

def test_serve_evidence_flags_set_the_limits() -> None:
    from vision_stream.cli.commands import _service_config
    from vision_stream.cli.parser import build_parser

    args = build_parser().parse_args(["serve", "--events", "memory", "--evidence-minutes", "30",
                                      "--evidence-mb", "8"])
    limits = _service_config(args, BackendOptions()).limits
    assert (limits.evidence_seconds, limits.evidence_bytes) == (1800.0, 8 * 2**20)
    assert limits.evidence_frames >= 1800 * 6  # the count never cuts the minutes short
    default = _service_config(build_parser().parse_args(["serve", "--events", "memory"]), BackendOptions()).limits
    assert (default.evidence_seconds, default.evidence_bytes) == (600.0, 64 * 2**20)


async def test_serve_refuses_a_bad_evidence_bound_in_one_line() -> None:
    code, _, err = await run_cli("serve", "--port", "0", "--http-port", "0", "--events", "memory",
                                 "--evidence-minutes", "0")
    assert code == 2 and err.strip().splitlines() == ["vision-stream: error: evidence_minutes must be > 0, got 0"]


def test_camera_evidence_keys_are_checked(tmp_path: Path) -> None:
    text = f'[cameras.door]\nsource = "{SAMPLES / "sample.mp4"}"\nevidence_minutes = 2\nevidence_mb = 0.5\n'
    camera = parse_cameras(text, origin=tmp_path / "cameras.toml", env={})[0]
    limits = camera.limits(Limits())
    assert (limits.evidence_seconds, limits.evidence_bytes) == (120.0, 2**19)
    with pytest.raises(CameraConfigError, match=r"cameras\.door: evidence_mb must be > 0"):
        parse_cameras(text.replace("0.5", "-1"), origin=tmp_path / "cameras.toml", env={})


async def test_a_camera_keeps_the_evidence_its_keys_allow(tmp_path: Path, media_root: Path) -> None:
    """A configured camera looping the sample clip in real time, with 40 KB of evidence:
    the oldest frames leave and what is held stays within the bound (the server's default is 64 MiB)."""
    bound = 40_000
    config_file = tmp_path / "cameras.toml"
    config_file.write_text(f'[cameras.door]\nsource = "{SAMPLES / "sample.mp4"}"\nloop = true\nbackend = "local"\n'
                           f'evidence_mb = {bound / 2**20}\n[cameras.door.sampling]\nfps = 4.0\n')
    cameras = load_cameras(config_file, env={})
    async for served in serve(ServiceConfig(access=SourceAccess(media_root=media_root)), media_root,
                              cameras=cameras):
        async with asyncio.timeout(scaled(10)):
            while True:
                await asyncio.sleep(0.3)
                try:
                    held = await client.get_frames(target(served), "door", from_media_time=0.0, to_media_time=1e9)
                except grpc.aio.AioRpcError:
                    continue  # nothing sampled yet
                if held.frames[0].frame_id > 1:  # the first frames were evicted
                    break
        assert sum(len(f.jpeg) for f in held.frames) <= bound
