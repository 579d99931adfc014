"""The vision-stream command, run as a user would: a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from helpers.paths import SAMPLES

from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

CLI = [sys.executable, "-m", "vision_stream.cli"]


def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("GEMINI_API_KEY", None)
    full_env.pop("GOOGLE_API_KEY", None)
    full_env.pop("PYTHONASYNCIODEBUG", None)  # the user's view: no debug chatter on stderr
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def test_replay_json_prints_camelcase_events_ending_with_session_ended() -> None:
    result = run("replay", str(SAMPLES / "sample.mp4"), "--fast", "--json", "--commentary-interval", "5")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["sessionId"] and "sessionStarted" in events[0]
    assert [e["seq"] for e in events] == [str(i) for i in range(1, len(events) + 1)]  # uint64 as string
    assert any("commentary" in e for e in events) and any("detection" in e for e in events)
    assert "sessionEnded" in events[-1]


def test_replay_readable_view() -> None:
    result = run("replay", str(SAMPLES / "sample.mp4"), "--fast")
    assert result.returncode == 0, result.stderr
    assert "commentary" in result.stdout and "session_ended" in result.stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    result = run("replay", str(tmp_path / "missing.mp4"), "--fast")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "missing.mp4" in result.stderr
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"definitely not a video" * 100)
    result = run("replay", str(bad), "--fast")
    assert result.returncode != 0 and "Traceback" not in result.stderr and result.stderr.strip()


def test_frames_writes_the_jpegs_sent_to_the_model(tmp_path: Path) -> None:
    result = run("frames", str(SAMPLES / "sample.mp4"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("*.jpg"))
    assert 10 <= len(files) <= 30
    assert any(f.name.endswith("_scene.jpg") for f in files)
    import cv2

    img = cv2.imread(str(files[0]))
    assert max(img.shape[:2]) <= 768


def test_snapshot_offline() -> None:
    result = run("snapshot", str(SAMPLES / "still.jpg"))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) > 20


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    server = subprocess.Popen([*CLI, "serve", "--http-port", "0", "--port", str(port), "--media-root", str(SAMPLES),
                               "--grace", "5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert "serving" in (server.stdout.readline() if server.stdout else "")
    return server


def _stop_server(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.kill()
        server.wait()
    for pipe in (server.stdout, server.stderr):
        if pipe:
            pipe.close()


def test_replay_through_a_server_and_watch() -> None:
    port = _free_port()
    server = _start_server(port)
    try:
        pushed = run("replay", str(SAMPLES / "sample.mp4"), "--fast", "--json", "--server", f"127.0.0.1:{port}")
        assert pushed.returncode == 0, pushed.stderr
        events = [json.loads(line) for line in pushed.stdout.splitlines()]
        assert "sessionStarted" in events[0] and "sessionEnded" in events[-1]
        assert any("detection" in e for e in events)
        watched = run("watch", "sample.mp4", "--fast", "--server", f"127.0.0.1:{port}")
        assert watched.returncode == 0, watched.stderr
        assert "session_ended" in watched.stdout and "commentary" in watched.stdout
        denied = run("watch", "../README.md", "--server", f"127.0.0.1:{port}")
        assert denied.returncode != 0 and "PERMISSION_DENIED" in denied.stderr and "Traceback" not in denied.stderr
    finally:
        _stop_server(server)


def test_sigterm_with_sessions_open_ends_them_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    server = _start_server(port)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.VisionStreamStub(channel)
            calls = [stub.Watch(pb.WatchRequest(source="sample.mp4", loop=True,
                                                config=pb.SessionConfig(backend="local"))) for _ in range(3)]
            firsts = [next(call) for call in calls]
            assert all(e.HasField("session_started") for e in firsts)
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            for call in calls:
                rest = list(call)
                assert rest[-1].session_ended.reason == "shutdown"
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - started < 8
        # New RPCs are refused once it is gone.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError):
            pb_grpc.VisionStreamStub(channel).ListSessions(pb.ListSessionsRequest(), timeout=2)
    finally:
        _stop_server(server)
