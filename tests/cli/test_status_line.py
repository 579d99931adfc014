"""The live status line of a watched or followed camera (vision_stream/cli/render.py StatusLine):
its text from real Stats counters, and on a real pty only (``follow`` of a configured camera
served by a real ``serve`` process); piped output has no control characters."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from helpers.cameras import free_port
from helpers.paths import SAMPLES
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
    assert stream.getvalue().endswith("\r" + status.line(now[0]) + "\x1b[K")
    status.update(pb.Event(session_id="cam", seq=4, session_ended=pb.SessionEnded()))
    assert stream.getvalue().endswith("\r\x1b[K")  # erased at the end


def test_printer_clears_the_status_line_before_each_printed_line() -> None:
    err, out = io.StringIO(), io.StringIO()
    printer = Printer(False, progress=StatusLine(err), out=out)
    printer(pb.Event(session_id="cam", seq=1, stats=pb.Stats(frames_in=5, source_state="connected")))
    printer(pb.Event(session_id="cam", seq=2, stats=pb.Stats(frames_in=9, source_state="connected")))
    assert err.getvalue().count("\r\x1b[K") == 1 and "connected  fps in/out" in err.getvalue()


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
    (the camera's Stats come every 10 s of media)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([*CLI, "follow", "sample-loop", "--server", f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    text = ""
    deadline = time.monotonic() + scaled(20)
    try:
        while time.monotonic() < deadline and not re.search(r"\rrunning  fps in/out [^\x1b]*sent [1-9]", text):
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    text += os.read(master, 65536).decode(errors="replace")
                except OSError:  # EIO: the child's side closed
                    break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(scaled(10))
        os.close(master)
    return text


@pytest.mark.slow
def test_follow_draws_the_status_line_on_a_terminal_only(camera_server: int) -> None:
    tty = _follow_in_a_pty(camera_server)
    # A looped file has no source_state: the state shown is the session's (running).
    drawn = re.findall(r"\rrunning  fps in/out ([^\x1b]*)\x1b\[K", tty)
    counted = r"sent [1-9]\d*  dropped \d+  last event \d+ s ago  \$0\.\d{4}$"
    assert any(re.search(counted, d) for d in drawn), tty[-800:]
    assert "\r\x1b[K[" in tty  # erased before each printed line
    piped = subprocess.Popen([*CLI, "follow", "sample-loop", "--server", f"127.0.0.1:{camera_server}"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(scaled(3))
    piped.send_signal(signal.SIGINT)
    out, err = piped.communicate(timeout=scaled(10))
    assert out.strip() and b"\r" not in out + err and b"fps in/out" not in out + err
