"""Every start-up and input error of the issue-15 list: one line on stderr naming the problem and
the fix, no traceback, and the exit code (2 usage, 1 a failed session or command, 130 Ctrl-C).

The CLI runs as a user runs it, in a subprocess; servers run in the test's loop on loopback
(helpers.server.serve) or as ``vision-stream serve`` itself when start-up is what is tested.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from helpers.paths import ROOT, SAMPLES
from helpers.server import Served, serve
from helpers.timing import scaled

from vision_stream.server.access import SourceAccess
from vision_stream.server.service import ServiceConfig

CLI = [sys.executable, "-m", "vision_stream.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "PYTHONASYNCIODEBUG")}
    return {**env, **extra}


async def cli(*args: str, **env: str) -> tuple[int, str, str]:
    """Run ``vision-stream ARGS``; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(*CLI, *args, env=_env(**env), cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), scaled(60))
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(err: str, *words: str) -> str:
    """``err`` is exactly one ``vision-stream...: error: ...`` line holding every word (case-insensitive)."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0], err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, err)
    assert "Errno" not in lines[0] and "Core" not in lines[0], err  # no errno numbers, no gRPC C-core wording
    return lines[0]


@pytest.fixture
async def server(media_root: Path) -> AsyncIterator[str]:
    async for served in serve(ServiceConfig(access=SourceAccess(media_root=media_root)), media_root):
        yield _target(served)


def _target(served: Served) -> str:
    return f"127.0.0.1:{served.running.port}"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_wav(path: Path, seconds: float = 2.0) -> Path:
    """A real audio-only file (16-bit PCM in WAV): a tone PyAV decodes, and no picture."""
    t = np.arange(int(16000 * seconds)) / 16000
    samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return path


# ---------------------------------------------------------------- serve start-up


async def test_serve_port_out_of_range_is_a_usage_error() -> None:
    code, _out, err = await cli("serve", "--http-port", "0", "--port", "99999")  # gRPC would serve on 99999 % 65536
    assert code == 2
    one_line(err, "--port", "99999", "0-65535")


async def test_serve_on_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _out, err = await cli("serve", "--http-port", "0", "--port", str(port))
    assert code == 2
    one_line(err, f"port {port}", "already in use", "--port")


@pytest.mark.parametrize(("host", "words"), [
    ("192.0.2.1", ("not an address of this machine", "127.0.0.1")),  # TEST-NET-1: never this machine's
    ("nosuch.invalid", ("cannot resolve host nosuch.invalid", "--host")),
])
async def test_serve_on_a_bad_host(host: str, words: tuple[str, ...]) -> None:
    code, _out, err = await cli("serve", "--http-port", "0", "--host", host, "--port", "0", "--insecure")
    assert code == 2
    one_line(err, *words)


async def test_serve_with_a_missing_media_root(tmp_path: Path) -> None:
    code, _out, err = await cli("serve", "--http-port", "0", "--port", "0", "--media-root", str(tmp_path / "clips"))
    assert code == 2
    one_line(err, "--media-root", "does not exist")


async def test_ctrl_c_during_start_up_has_no_traceback() -> None:
    """SIGINT at several moments of start-up (imports, parsing, binding, serving): exit 130
    (or killed by SIGINT before Python's handler, or 0 once serving: a clean shutdown)."""
    for command in (["serve", "--http-port", "0", "--port", "0"], ["replay", str(SAMPLES / "sample.mp4")]):
        for delay in (0.1, 0.3, 0.5, 0.8):
            proc = await asyncio.create_subprocess_exec(*CLI, *command, env=_env(), cwd=ROOT,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
            await asyncio.sleep(delay)
            proc.send_signal(signal.SIGINT)
            _out, err = await asyncio.wait_for(proc.communicate(), scaled(20))
            assert proc.returncode in (0, 130, -signal.SIGINT), (command, delay, proc.returncode, err)
            assert "Traceback" not in err.decode() and "Exception ignored" not in err.decode(), (command, delay)


# ------------------------------------------------------------------ replay input


@pytest.mark.parametrize("fast", [True, False])
async def test_replay_server_a_text_file_named_mp4(server: str, tmp_path: Path, fast: bool) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("shopping list: milk, eggs\n" * 20)
    code, out, err = await cli("replay", str(fake), "--server", server, *(["--fast"] if fast else []))
    assert code == 1, (out, err)
    one_line(err, "notes.mp4", "session failed", "not a readable media container")


async def test_watch_of_a_file_that_is_not_media_is_one_line_exit_1(server: str, media_root: Path) -> None:
    (media_root / "notes.mp4").write_text("not a video\n" * 50)
    code, out, err = await cli("watch", "notes.mp4", "--server", server)
    assert code == 1, (out, err)  # the server refuses it before a session starts (a status, not an event)
    line = one_line(err, "notes.mp4", "not a readable media container")
    assert "FAILED_PRECONDITION" not in line, line  # plain words: the status name adds nothing


async def test_replay_a_directory(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "clips.mp4"
    folder.mkdir()
    for extra in ([], ["--server", server]):
        code, _out, err = await cli("replay", str(folder), "--fast", *extra)
        assert code == 2, extra
        one_line(err, "clips.mp4", "is a directory")


async def test_replay_audio_only_pcm_is_no_video_stream(server: str, tmp_path: Path) -> None:
    """Raw PCM in a WAV: FFmpeg decodes it, but there is no picture; once 'succeeded' with 0 frames."""
    tone = _write_wav(tmp_path / "tone.wav")
    for extra in ([], ["--server", server]):
        code, _out, err = await cli("replay", str(tone), "--fast", *extra)
        assert code == 1, (extra, err)
        one_line(err, "tone.wav", "no video stream")


async def test_broken_pipe_ends_quietly() -> None:
    """``vision-stream replay ... | head -1``: exit 0, nothing on stderr (the Python docs' recipe)."""
    proc = await asyncio.create_subprocess_exec(*CLI, "replay", str(SAMPLES / "sample.mp4"), "--fast", "--json",
                                                env=_env(), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = await asyncio.wait_for(proc.stdout.readline(), scaled(30))
    assert json.loads(first)["sessionStarted"]
    transport = proc._transport  # type: ignore[attr-defined]  # close our end of the pipe, as head does
    transport.get_pipe_transport(1).close()
    err = await asyncio.wait_for(proc.stderr.read(), scaled(30))
    assert await asyncio.wait_for(proc.wait(), scaled(30)) == 0
    assert err == b"", err


# ------------------------------------------------------------- connection words


async def test_server_refusing_the_connection_in_plain_words() -> None:
    port = _closed_port()
    code, _out, err = await cli("replay", str(SAMPLES / "sample.mp4"), "--fast", "--server", f"127.0.0.1:{port}")
    assert code == 1
    one_line(err, f"connection refused by 127.0.0.1:{port}")


async def test_unresolvable_server_in_plain_words() -> None:
    code, _out, err = await cli("watch", "sample.mp4", "--server", "nosuch.invalid:50051")
    assert code == 1
    one_line(err, "cannot resolve host nosuch.invalid")


async def test_unreachable_model_backends_in_plain_words() -> None:
    """A key, but Live and REST refuse: the switch reason names each in words (was
    "ConnectionRefusedError: [Errno 111] Connect call failed" and "ConnectError at ...")."""
    port = _closed_port()
    code, out, err = await cli("replay", str(SAMPLES / "sample.mp4"), "--fast", "--json",
                               "--live-url", f"ws://127.0.0.1:{port}", "--rest-url", f"http://127.0.0.1:{port}",
                               GEMINI_API_KEY="test-key-not-real")
    assert code == 0, err
    reasons = [json.loads(line)["backendChanged"]["reason"] for line in out.splitlines() if "backendChanged" in line]
    assert reasons, out[:2000]
    assert f"connection refused by 127.0.0.1:{port}" in reasons[0]
    assert "Errno" not in reasons[0] and "ConnectError" not in reasons[0]


def test_rtsp_dns_failure_in_plain_words() -> None:
    """FFmpeg reports a failed lookup as EIO ("Input/output error"): named as DNS instead."""
    try:
        socket.getaddrinfo("nosuch.invalid", None)
    except socket.gaierror:
        pass
    else:
        pytest.skip("this resolver answers for .invalid names")
    from vision_stream.errors import SourceOpenError
    from vision_stream.media.reconnecting import ConnectionOptions
    from vision_stream.media.rtsp import AvStreamConnection

    with pytest.raises(SourceOpenError) as caught:
        AvStreamConnection("rtsp://nosuch.invalid/stream", description="rtsp://nosuch.invalid/stream", audio=None,
                           options=ConnectionOptions(open_timeout=5, read_timeout=5))
    assert "cannot resolve host nosuch.invalid" in caught.value.message
    assert "Input/output" not in caught.value.message


# ------------------------------------------------------------ flags and snapshot


async def test_snapshot_backend_live_is_not_offered() -> None:
    code, _out, err = await cli("snapshot", str(SAMPLES / "still.jpg"), "--backend", "live")
    assert code == 2
    one_line(err, "--backend", "'live'", "auto", "rest", "local")


async def test_snapshot_reports_the_image_s_own_size() -> None:
    code, out, err = await cli("snapshot", str(SAMPLES / "still.jpg"), "--json")
    assert code == 0, err
    assert "800x600" in json.loads(out)["text"]  # still.jpg is 800x600; analysed at 768x576


async def test_snapshot_says_it_ignores_persona() -> None:
    code, out, err = await cli("snapshot", str(SAMPLES / "still.jpg"), "--persona", "a pirate")
    assert code == 0 and out.strip()
    assert err.count("\n") == 1 and "warning:" in err and "--prompt" in err, err


async def test_persona_and_language_offline_say_they_are_ignored() -> None:
    code, out, err = await cli("replay", str(SAMPLES / "sample.mp4"), "--fast", "--persona", "a pirate",
                               "--language", "fr-FR")
    assert code == 0 and "session_ended" in out
    assert err.count("\n") == 1 and "warning:" in err and "--persona and --language ignored" in err, err


async def test_bench_is_not_a_command_and_says_where_it_is() -> None:
    code, _out, err = await cli("bench", "--help")
    assert code == 2
    one_line(err, "python -m bench")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench", "--help", cwd=ROOT, env=_env(),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err_bytes = await asyncio.wait_for(proc.communicate(), scaled(30))
    assert proc.returncode == 0 and b"usage: python -m bench" in out and not err_bytes
