"""A CLI command on a real pseudo-terminal, as in a user's shell, and what its screen shows.

The progress bar and the camera status line are drawn only when stdout and stderr are a
terminal (vision_stream/cli/render.py), so their tests run the real command on a pty.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Mapping

from helpers.timing import scaled


def run_in_pty(command: list[str], *, until: Callable[[str], bool] | None = None, timeout: float = 30,
               columns: int = 100, env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Run ``command`` with stdout and stderr on one pty sized ``columns`` x 24 (TIOCSWINSZ, as a
    terminal emulator sets it) until it exits or ``until(output so far)`` holds, then SIGINT
    (Ctrl-C). Returns everything written and the exit code."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    text = ""
    deadline = time.monotonic() + scaled(timeout)
    try:
        while time.monotonic() < deadline and not (until is not None and until(text)):
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: Linux reports the child's side of the pty closed
                    break
                if not data:
                    break
                text += data.decode(errors="replace")
            elif proc.poll() is not None:
                break
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        return text, proc.wait(scaled(10))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def screen(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: a carriage return moves back to the start of the
    line and what follows overwrites it (how an in-place bar is redrawn and erased)."""
    lines = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        shown: list[str] = []
        for part in raw.split("\r"):
            shown[:len(part)] = part
        lines.append("".join(shown).rstrip())
    return lines
