"""Child processes the scenarios talk to: the Live emulator and a vision-stream server."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.common import REPO


@contextlib.contextmanager
def child(argv: Sequence[str], ready: str) -> Iterator[tuple[subprocess.Popen[str], re.Match[str]]]:
    """Start ``argv``; wait for a stdout line matching ``ready`` (a regex); stop it on exit."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{argv[:3]} exited before it was ready")
            match = re.search(ready, line)
            if match:
                break
        yield proc, match
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    """The Live emulator in a child process; yields its ``ws://`` base URL."""
    with child([sys.executable, "-m", "bench.emulator_proc"], r"port=(\d+)") as (_, match):
        yield f"ws://127.0.0.1:{match.group(1)}"


@contextlib.contextmanager
def server(media_root: Path, max_sessions: int = 64) -> Iterator[str]:
    """``vision-stream serve`` on a free port in a child process; yields ``host:port``."""
    argv = [sys.executable, "-m", "vision_stream.cli", "serve", "--port", "0", "--media-root", str(media_root),
            "--max-sessions", str(max_sessions), "--backend", "local"]
    with child(argv, r"serving on ([\d.]+):(\d+)") as (_, match):
        yield f"{match.group(1)}:{match.group(2)}"
