"""``vision-stream doctor`` as a user runs it: a real process, the key checked by a real
``GET /models`` against the REST emulator on loopback, real files and a real bound port."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from helpers.paths import SAMPLES
from helpers.rest import API_KEY
from helpers.timing import scaled

from vision_stream.testing.rest_emulator import RestEmulator

CLI = [sys.executable, "-m", "vision_stream.cli", "doctor"]


async def doctor(*args: str, key: str | None = API_KEY) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    if key is not None:
        env["GEMINI_API_KEY"] = key
    proc = await asyncio.create_subprocess_exec(*CLI, "--port", "0", "--http-port", "0", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), scaled(60))
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def lines(out: str, level: str) -> dict[str, str]:
    """``what -> detail`` of the lines at ``level``."""
    found = {}
    for line in out.splitlines():
        if line.startswith(f"{level:4} "):
            what, _, detail = line[5:].partition(": ")
            found[what] = detail
    return found


async def test_good_environment_is_all_ok(rest_emulator: RestEmulator, tmp_path: Path) -> None:
    code, out = await doctor("--rest-url", rest_emulator.url, "--media-root", str(tmp_path),
                             "--config", str(SAMPLES / "cameras.toml"))
    assert code == 0, out
    ok = lines(out, "ok")
    assert ok["GEMINI_API_KEY"].startswith(f"accepted by {rest_emulator.url}/v1 (")
    assert {"python", "av", "ffmpeg h264", "ffmpeg mjpeg", "ffmpeg aac", "opencv face model", "--media-root",
            "--config", "--port 0"} <= set(ok)
    assert "1 cameras" in ok["--config"]
    assert not lines(out, "fail")
    assert API_KEY not in out


async def test_refused_key_fails_naming_the_fix(rest_emulator: RestEmulator, tmp_path: Path) -> None:
    wrong = "AIzaWRONG-key-9876543210"
    code, out = await doctor("--rest-url", rest_emulator.url, "--media-root", str(tmp_path), key=wrong)
    assert code == 1, out
    detail = lines(out, "fail")["GEMINI_API_KEY"]
    assert "HTTP 400" in detail and "aistudio.google.com/apikey" in detail
    assert wrong not in out and API_KEY not in out


async def test_no_key_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    code, out = await doctor("--media-root", str(tmp_path), key=None)
    assert code == 0, out
    assert "offline analyzer" in lines(out, "warn")["GEMINI_API_KEY"]


async def test_missing_media_root_broken_config_and_busy_port_fail(tmp_path: Path) -> None:
    broken = tmp_path / "cameras.toml"
    broken.write_text('[cameras.door]\nsource = "rtsp://cam/1"\nfps = "fast"\n')
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = await doctor("--media-root", str(tmp_path / "absent"), "--config", str(broken),
                                 "--http-port", str(port), key=None)
    assert code == 1, out
    failed = lines(out, "fail")
    assert "is not a directory" in failed["--media-root"]
    assert str(broken) in failed["--config"] and "fps" in failed["--config"]
    assert "already in use" in failed[f"--http-port {port}"]
    assert "pick another --http-port" in failed[f"--http-port {port}"]  # the flag that fixes it, not --port
    assert out.rstrip().splitlines()[-1].startswith(f"{len(out.splitlines()) - 1} checks: 3 failed")
