"""Child processes the scenarios talk to: the Live emulator and a vision-stream server."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.common import REPO


def split_cores() -> tuple[set[int], set[int]] | None:
    """(server cores, client cores): the usable cores in two halves, or None with fewer than 2.

    The fan-out measurement's subscribers run in their own process; on a small
    machine they would otherwise compete with the server for the same cores
    (the scheduler moves both around), so each side gets its own half.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    half = len(cores) // 2
    return set(cores[:half]), set(cores[half:])


def pinned(cpus: set[int] | None) -> dict[str, object]:
    """``subprocess`` keyword arguments that run the child on ``cpus`` only (none: anywhere)."""
    if not cpus:
        return {}
    return {"preexec_fn": lambda: os.sched_setaffinity(0, cpus)}


@contextlib.contextmanager
def child(argv: Sequence[str], ready: str,
          cpus: set[int] | None = None) -> Iterator[tuple[subprocess.Popen[str], re.Match[str]]]:
    """Start ``argv`` (on ``cpus`` only, if given); wait for a stdout line matching ``ready`` (a regex);
    stop it on exit."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
                            **pinned(cpus))  # type: ignore[call-overload]
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
def server(media_root: Path, max_sessions: int = 64, cpus: set[int] | None = None) -> Iterator[str]:
    """``vision-stream serve`` on a free port in a child process (on ``cpus`` only, if given);
    yields ``host:port``."""
    argv = [sys.executable, "-m", "vision_stream.cli", "serve", "--port", "0", "--media-root", str(media_root),
            "--max-sessions", str(max_sessions), "--backend", "local"]
    with child(argv, r"serving on ([\d.]+):(\d+)", cpus) as (_, match):
        yield f"{match.group(1)}:{match.group(2)}"
