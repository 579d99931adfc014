"""What the README and the shipped files promise, checked against the code and real runs.

- the emulator knob table in the README is the one rendered from the knob classes;
- ``samples/cameras.toml`` runs: ``serve --cameras samples/cameras.toml`` starts its camera
  and ``watch`` follows it (the shipped clip, the offline analyzer);
- the Docker health check follows the server's ``--port`` (read from its command line);
- ``emulate`` logs connections and injected faults at the default level;
- LICENSE is the Apache-2.0 text pyproject declares; no developer-machine paths in the docs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import tomllib
from collections.abc import AsyncIterator

import pytest
from helpers.paths import ROOT, SAMPLES
from helpers.timing import scaled

from vision_stream.testing.knob_docs import BEGIN, END, readme_block

CLI = [sys.executable, "-m", "vision_stream.cli"]
README = ROOT / "README.md"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "PYTHONASYNCIODEBUG")}


async def _start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*args, env=_env(), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), scaled(10))
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _line(proc: asyncio.subprocess.Process, pattern: str, *, stream: str = "stdout") -> re.Match[str]:
    """The first line of ``stream`` matching ``pattern`` (bounded by the time scale)."""
    reader = proc.stdout if stream == "stdout" else proc.stderr
    assert reader is not None

    async def find() -> re.Match[str]:
        while line := (await reader.readline()).decode():
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"{stream} ended without {pattern!r}")

    return await asyncio.wait_for(find(), scaled(30))


@pytest.fixture
async def cameras_server() -> AsyncIterator[str]:
    """``vision-stream serve --cameras samples/cameras.toml`` on a free port; yields HOST:PORT."""
    proc = await _start(*CLI, "serve", "--http-port", "0", "--port", "0", "--cameras", str(SAMPLES / "cameras.toml"))
    try:
        match = await _line(proc, r"serving on (127\.0\.0\.1:\d+)")
        yield match.group(1)
    finally:
        await _stop(proc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_knob_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "README lost its emulator knob block"
    shown = text[text.index(BEGIN):text.index(END) + len(END)]
    assert shown == readme_block(), (
        "README's emulator knob table differs from the code: run "
        "`python -m vision_stream.testing.knob_docs --write README.md`")
    for word in ("fault=KIND@T[/N,M]", "rest.fault=KIND[xN][+S]", "rest.retry_delay=V", "refuse=STATUS[:N]"):
        assert f"`{word}`" in shown


async def test_sample_cameras_file_serves_and_watch_follows_it(cameras_server: str) -> None:
    cameras = tomllib.loads((SAMPLES / "cameras.toml").read_text())["cameras"]
    assert list(cameras) == ["sample-loop"]
    watch = await _start(*CLI, "watch", "sample-loop", "--server", cameras_server, "--json")
    try:
        kinds: set[str] = set()

        async def read() -> None:
            assert watch.stdout is not None
            while line := await watch.stdout.readline():
                event = json.loads(line)
                assert event["sessionId"] == "sample-loop"
                kinds.update(k for k in ("detection", "commentary", "stats") if k in event)
                if "detection" in kinds:
                    return

        await asyncio.wait_for(read(), scaled(30))
    finally:
        await _stop(watch)
    assert watch.returncode in (0, 130)


async def test_docker_healthcheck_follows_the_server_port() -> None:
    port = _free_port()
    server = await _start(*CLI, "serve", "--http-port", "0", "--port", str(port))
    try:
        await _line(server, rf"serving on 127\.0\.0\.1:{port}")
        check = await _start(sys.executable, str(ROOT / "docker" / "healthcheck.py"), "--pid", str(server.pid))
        _out, err = await asyncio.wait_for(check.communicate(), scaled(15))
        assert check.returncode == 0, err
    finally:
        await _stop(server)
    check = await _start(sys.executable, str(ROOT / "docker" / "healthcheck.py"), f"127.0.0.1:{port}")
    _out, err = await asyncio.wait_for(check.communicate(), scaled(15))
    assert check.returncode == 1 and b"unhealthy" in err  # nothing serves there any more
    health = (ROOT / "docker" / "Dockerfile").read_text().split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert "50051" not in health.split("CMD", 1)[1].splitlines()[0]  # not hard-wired to the default port


async def test_emulate_logs_connections_and_faults_by_default() -> None:
    import websockets
    from websockets.exceptions import InvalidStatus

    emulator = await _start(*CLI, "emulate", "--port", "0", "--fault", "refuse=503")
    try:
        url = (await _line(emulator, r"Live emulator on (ws://\S+)")).group(1)
        with pytest.raises(InvalidStatus):
            async with websockets.connect(f"{url}/ws/google.ai.generativelanguage.v1beta.GenerativeService."
                                          "BidiGenerateContent", open_timeout=scaled(5)):
                pass
        await _line(emulator, r"INFO .*refuses Live upgrade 1: HTTP 503", stream="stderr")
    finally:
        await _stop(emulator)


def test_license_is_the_apache_2_0_text_pyproject_declares() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] in ("Apache-2.0", {"text": "Apache-2.0"})


def test_docs_name_no_developer_machine_paths() -> None:
    for path in (README, SAMPLES / "README.md", SAMPLES / "cameras.toml"):
        assert "/work/" not in path.read_text(), path
