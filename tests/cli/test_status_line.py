"""The live status line of a watched or followed camera (vision_stream/cli/render.py StatusLine):
its text from real Stats counters, and on a real pty only (``follow`` of a configured camera
served by a real ``serve`` process); piped output has no control characters."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from helpers.cameras import free_port
from helpers.paths import SAMPLES
from helpers.terminal import run_in_pty, screen
from helpers.timing import scaled

from vision_stream.cli.render import Printer, StatusLine
from vision_stream.v1 import vision_stream_pb2 as pb

CLI = [sys.executable, "-m", "vision_stream.cli"]


def test_status_line_rates_age_and_cost_from_stats() -> None:
    now = [100.0]
    stream = io.StringIO()
    status = StatusLine(stream, clock=lambda: now[0])
    status.update(pb.Event(session_id="cam", seq=1, session_started=pb.SessionStarted()))
    status.update(pb.Event(session_id="cam", seq=2, stats=pb.Stats(frames_in=10, frames_sent=1,
                                                                    source_state="connected")))
    now[0] = 102.0
    status.update(pb.Event(session_id="cam", seq=3, stats=pb.Stats(frames_in=30, frames_sent=3, frames_dropped=2,
                                                                    source_state="connected",
                                                                    estimated_cost_usd=0.0125)))
    assert status.line(now[0]) == ("connected  fps in/out 10.0/1.0  sent 3  dropped 2  last event 2 s ago  "
                                   "$0.0125")
    assert screen(stream.getvalue())[-1] == status.line(now[0])  # what the terminal shows now
    status.update(pb.Event(session_id="cam", seq=4, session_ended=pb.SessionEnded()))
    assert screen(stream.getvalue())[-1] == ""  # erased at the end


def test_printer_clears_the_status_line_before_each_printed_line() -> None:
    """Events on stdout and the status on stderr share one terminal: each printed line shows whole,
    the status line is drawn again under it."""
    term = io.StringIO()
    printer = Printer(False, progress=StatusLine(term), out=term)
    printer(pb.Event(session_id="cam", seq=1, stats=pb.Stats(frames_in=5, source_state="connected")))
    printer(pb.Event(session_id="cam", seq=2, stats=pb.Stats(frames_in=9, source_state="connected")))
    shown = screen(term.getvalue())
    assert shown[0] == "session cam (from #1)" and [line[:13] for line in shown[1:3]] == ["[       -] #1",
                                                                                         "[       -] #2"], shown
    assert shown[3].startswith("connected  fps in/out"), shown


@pytest.fixture
def camera_server() -> Iterator[int]:
    """``serve`` with the shipped cameras file (camera sample-loop, offline analyzer)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port), "--http-port", "0", "--events", "memory",
                             "--cameras", str(SAMPLES / "cameras.toml")], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + scaled(30)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(scaled(15))


def _follow_in_a_pty(port: int) -> str:
    """``follow sample-loop`` on a pseudo-terminal until a status line shows the first Stats' counts
    (the camera's Stats come every 10 s of media), then Ctrl-C."""
    tty, _ = run_in_pty([*CLI, "follow", "sample-loop", "--server", f"127.0.0.1:{port}"], timeout=20,
                        until=lambda text: re.search(r"\rrunning  fps in/out [^\r]*sent [1-9]", text) is not None)
    return tty


@pytest.mark.slow
def test_follow_draws_the_status_line_on_a_terminal_only(camera_server: int) -> None:
    tty = _follow_in_a_pty(camera_server)
    # A looped file has no source_state: the state shown is the session's (running).
    drawn = [part.rstrip() for part in tty.split("\r") if part.startswith("running  fps in/out ")]
    counted = r"sent [1-9]\d*  dropped \d+  last event \d+ s ago  \$0\.\d{4}$"
    assert any(re.search(counted, d) for d in drawn), tty[-800:]
    printed = [line for line in screen(tty) if line.startswith("[")]
    assert printed and all(re.match(r"\[[ \d.s-]{8}\] #\d", line) for line in printed), printed  # whole lines
    piped = subprocess.Popen([*CLI, "follow", "sample-loop", "--server", f"127.0.0.1:{camera_server}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(scaled(3))
    piped.send_signal(signal.SIGINT)
    out, err = piped.communicate(timeout=scaled(10))
    assert out.strip() and b"\r" not in out + err and b"fps in/out" not in out + err and b"\x1b" not in out + err
