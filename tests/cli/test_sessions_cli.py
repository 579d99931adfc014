"""``sessions``, ``follow``, ``stop`` and ``watch CAMERA`` against a real server with a configured camera,
and the client API they stand on (``vision_stream.client``), including the README's example.

The server runs in the test's loop (helpers.server.serve) with a cameras file whose camera
``sample-loop`` loops the shipped sample clip on the offline analyzer; the CLI runs as a user
runs it, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from helpers.paths import ROOT, SAMPLES
from helpers.server import Served, assert_gap_free, kinds, serve
from helpers.timing import scaled

from vision_stream import client
from vision_stream.server.access import SourceAccess
from vision_stream.server.cameras import load_cameras
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb

CLI = [sys.executable, "-m", "vision_stream.cli"]
CAMERA = "sample-loop"  # samples/cameras.toml's name, as in the README


@pytest.fixture
async def camera_server(tmp_path: Path, media_root: Path) -> AsyncIterator[Served]:
    """A server running the configured camera ``sample-loop`` (the sample clip, looped, offline analyzer)."""
    config_file = tmp_path / "cameras.toml"
    config_file.write_text(f'[cameras.{CAMERA}]\nsource = "{SAMPLES / "sample.mp4"}"\nloop = true\n'
                           'backend = "local"\n')
    cameras = load_cameras(config_file, env={})
    async for served in serve(ServiceConfig(access=SourceAccess(media_root=media_root)), media_root,
                              cameras=cameras):
        yield served


def target(served: Served) -> str:
    return f"127.0.0.1:{served.running.port}"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "PYTHONASYNCIODEBUG")}
    return env


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*CLI, *args, env=_env(), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def run_cli(*args: str, within: float = 30) -> tuple[int, str, str]:
    proc = await start_cli(*args)
    out, err = await asyncio.wait_for(proc.communicate(), scaled(within))
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def read_until(proc: asyncio.subprocess.Process, predicate: str, *, within: float = 15) -> list[str]:
    """stdout lines up to and including the first that contains ``predicate``."""
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(scaled(within)):
        while not lines or predicate not in lines[-1]:
            line = await proc.stdout.readline()
            assert line, f"stdout ended before {predicate!r}: {lines[-5:]}"
            lines.append(line.decode())
    return lines


async def test_sessions_lists_the_camera(camera_server: Served) -> None:
    code, out, err = await run_cli("sessions", "--server", target(camera_server))
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "SOURCE", "BACKEND", "STATE", "FRAMES", "AGE"]
    (row,) = [r.split() for r in rows]
    assert row[0] == CAMERA and row[1] == "sample.mp4" and row[2] == "local" and row[3] in ("starting", "running")
    assert re.fullmatch(r"\d+", row[4]) and re.fullmatch(r"\d+s", row[5])


async def test_follow_and_watch_the_camera_then_stop_ends_both(camera_server: Served) -> None:
    server = target(camera_server)
    follow = await start_cli("follow", CAMERA, "--server", server)
    watch = await start_cli("watch", CAMERA, "--server", server, "--json")  # a camera name, not a file path
    try:
        followed = await read_until(follow, "detection")
        assert followed[0].startswith(f"session {CAMERA}") or f"session {CAMERA}:" in followed[0]
        assert "session_started" in followed[0]  # from the oldest retained event: the camera's start
        watched = [json.loads(line) for line in await read_until(watch, '"detection"')]
        assert {e["sessionId"] for e in watched} == {CAMERA} and "sessionStarted" in watched[0]

        code, out, err = await run_cli("stop", CAMERA, "--server", server)
        assert code == 0, err
        assert out.startswith(f"stopped {CAMERA}: ended,") and "frames sent" in out

        for proc in (follow, watch):
            rest, err_bytes = await asyncio.wait_for(proc.communicate(), scaled(15))
            assert proc.returncode == 0, err_bytes.decode()
            assert "session_ended" in rest.decode().splitlines()[-1] or '"sessionEnded"' in rest.decode()
    finally:
        for proc in (follow, watch):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_follow_after_seq_json_resumes_gap_free(camera_server: Served) -> None:
    server = target(camera_server)
    await first_detection(server)
    await client.stop_session(server, CAMERA)  # ended: its retained events replay, then the call ends
    code, out, err = await run_cli("follow", CAMERA, "--after", "3", "--json", "--server", server)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [int(e["seq"]) for e in events] == list(range(4, 4 + len(events)))
    assert "sessionEnded" in events[-1] and events[-1]["sessionEnded"]["reason"] == "stopped"
    # The readable view of the same resumed stream names the session first, then its events.
    code, out, err = await run_cli("follow", CAMERA, "--after", "3", "--server", server)
    assert code == 0, err
    assert out.splitlines()[0] == f"session {CAMERA} (from #4)"


async def test_follow_resolves_the_source_of_one_running_session(camera_server: Served) -> None:
    server = target(camera_server)
    shutil.copy(camera_server.media_root / "sample.mp4", camera_server.media_root / "yard.mp4")
    started = [await detached_watch(camera_server, name) for name in ("yard.mp4", "sample.mp4")]
    try:
        proc = await start_cli("follow", "yard.mp4", "--server", server, "--json")
        (line,) = await read_until(proc, "sessionStarted")
        assert json.loads(line)["sessionId"] == started[0]
        proc.kill()
        await proc.wait()
        # Two running sessions read sample.mp4 (the camera and the Watch): name one by id.
        code, _, err = await run_cli("follow", "sample.mp4", "--server", server)
        assert code == 2 and err.count("\n") == 1 and "2 running sessions" in err and started[1] in err, err
    finally:
        for session_id in started:
            await client.stop_session(server, session_id)


async def first_detection(server: str) -> list[pb.Event]:
    """The camera's events up to its first detection (about 1 s of media in), through client.subscribe."""
    seen: list[pb.Event] = []
    async with asyncio.timeout(scaled(10)):
        async for event in client.subscribe(server, CAMERA):
            seen.append(event)
            if event.HasField("detection"):
                break
    return seen


async def detached_watch(served: Served, source: str) -> str:
    """Start a looping Watch session that outlives its call; returns its id."""
    call = served.stub.Watch(pb.WatchRequest(source=source, detach=True, loop=True,
                                             config=pb.SessionConfig(backend="local")))
    first = await asyncio.wait_for(anext(aiter(call)), scaled(10))
    call.cancel()  # detached: the session keeps running
    return first.session_id


async def test_bad_ids_and_refused_flags_are_one_line(camera_server: Served) -> None:
    server = target(camera_server)
    for args in (("follow", "no-such-session"), ("stop", "no-such-session")):
        code, out, err = await run_cli(*args, "--server", server)
        assert code == 1 and out == ""
        assert err.count("\n") == 1 and "NOT_FOUND" in err and "no-such-session" in err, err
        assert "Traceback" not in err
    code, _, err = await run_cli("follow", CAMERA, "--after", "-1", "--server", server)
    assert code == 2 and err.count("\n") == 1 and "--after -1" in err, err
    code, _, err = await run_cli("watch", CAMERA, "--fast", "--server", server)
    assert code == 2 and err.count("\n") == 1 and "--fast" in err and CAMERA in err, err
    # A file name still goes to the Watch RPC (the media root's sample clip, to its end).
    code, out, err = await run_cli("watch", "sample.mp4", "--fast", "--server", server)
    assert code == 0, err
    assert "session_ended" in out.splitlines()[-1]


async def test_follow_of_a_failed_session_exits_1_like_watch(camera_server: Served, tmp_path: Path) -> None:
    """``follow`` judges the session's end as ``replay``/``watch`` do: failed is one line and exit 1."""
    server = target(camera_server)
    fake = tmp_path / "notes.mp4"
    fake.write_text("shopping list: milk, eggs\n" * 20)
    code, out, err = await run_cli("replay", str(fake), "--server", server, "--json")
    assert code == 1, err
    session_id = json.loads(out.splitlines()[0])["sessionId"]
    code, out, err = await run_cli("follow", session_id, "--server", server)
    assert code == 1, (out, err)
    assert "session_ended" in out.splitlines()[-1] and "failed" in out.splitlines()[-1]
    assert err.count("\n") == 1 and "session failed" in err and "Traceback" not in err, err


async def test_follow_ctrl_c_exits_130_without_traceback(camera_server: Served) -> None:
    proc = await start_cli("follow", CAMERA, "--server", target(camera_server))
    try:
        await read_until(proc, "session_started")
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), scaled(10))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err.decode(), err.decode()


async def test_client_api_list_subscribe_stop(camera_server: Served) -> None:
    server = target(camera_server)
    (info,) = await client.list_sessions(server)
    assert info.session_id == CAMERA and info.state in ("starting", "running") and info.backend == "local"

    seen = await first_detection(server)
    assert seen[0].HasField("session_started")
    assert_gap_free(seen)

    stopped = await client.stop_session(server, CAMERA)
    assert stopped.session_id == CAMERA and stopped.state == "ended"
    resumed = [e async for e in client.subscribe(server, CAMERA, after_seq=seen[-1].seq)]
    assert_gap_free(resumed, first=seen[-1].seq + 1)
    assert kinds(resumed)[-1] == "session_ended" and resumed[-1].session_ended.reason == "stopped"
    (after,) = await client.list_sessions(server)
    assert after.state == "ended"

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await client.stop_session(server, "no-such-session")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        [e async for e in client.subscribe(server, "no-such-session")]
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND


async def test_readme_python_client_example_runs(camera_server: Served) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python client", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 15
    assert textwrap.indent(code, "    ") in (client.__doc__ or "")  # the module docstring shows the same
    script = code.replace("127.0.0.1:50051", target(camera_server))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, env=_env(),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), scaled(30))
    assert proc.returncode == 0, err.decode()
    listed, detection = out.decode().splitlines()
    assert listed.split()[0] == CAMERA and listed.split()[1] == "sample.mp4"
    assert re.fullmatch(r"\d+\.\ds \w+", detection)


def test_sessions_table_shows_no_frame_count_for_a_stored_session() -> None:
    """A session read back from the store has no Stats: its FRAMES is "-", not a false 0."""
    from vision_stream.cli.sessions import session_table
    from vision_stream.v1 import vision_stream_pb2 as pb

    running = pb.SessionInfo(session_id="live", state="running", stats=pb.Stats(frames_sent=0))
    stored = pb.SessionInfo(session_id="old", state="ended")
    rows = [line.split() for line in session_table([running, stored], now=0.0)]
    assert rows[1][0] == "live" and rows[1][-2] == "0" and rows[2][0] == "old" and rows[2][-2] == "-", rows
