"""A real RTSP server (Debian's gst-rtsp-server via /usr/bin/python3 + python3-gi) and
a loopback MJPEG HTTP server, for the camera tests (their fixtures: tests/cameras/conftest.py).

The RTSP server runs ``vision_stream/testing/rtsp_camera.py`` (also the Compose
stack's test camera) as a subprocess so tests can kill it
(SIGKILL), stall it (SIGSTOP/SIGCONT) and restart it on the same port.
Everything skips cleanly, saying why, when the Debian packages are missing.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from helpers.clips import moving_block
from helpers.paths import SHARED

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVER_SCRIPT = HERE.parents[1] / "vision_stream" / "testing" / "rtsp_camera.py"
PACKAGES = ("gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
            "gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad python3-gi")
_PROBE = (
    "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing=[e for e in 'qtdemux h264parse rtph264pay aacparse rtpmp4gpay videotestsrc x264enc'.split()"
    " if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))"
)


def gstreamer_missing() -> str | None:
    """Why the RTSP server cannot run here, or None when it can."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is absent (install python3-gi: apt-get install {PACKAGES})"
    try:
        probe = subprocess.run([str(SYSTEM_PYTHON), "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {SYSTEM_PYTHON}: {exc}"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer RTSP server unavailable ({last}); apt-get install {PACKAGES}"
    if probe.stdout.strip():
        return f"GStreamer elements missing: {probe.stdout.strip()}; apt-get install {PACKAGES}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# What the camera tests' clips look like: a moving block, x264 tuned for live streaming.
CAMERA_CLIP: dict[str, Any] = {"picture": moving_block, "tune": "zerolatency"}


class RtspServer:
    """The GStreamer RTSP server subprocess on 127.0.0.1:``port``.

    Mounts: ``/clip`` (generated H.264+AAC clip), ``/live`` (endless live test
    pattern, shared: later clients join mid-GOP), ``/car`` (the real
    intel_car-detection.mp4 when ../shared/media has it).
    """

    def __init__(self, args: list[str], *, port: int, user: str = "", password: str = "",
                 scheme: str = "rtsp") -> None:
        self.args = args
        self.port = port
        self.user = user
        self.password = password
        self.scheme = scheme
        self.proc: subprocess.Popen[str] | None = None
        self.mounts: set[str] = set()

    def url(self, mount: str, *, user: str | None = None, password: str | None = None) -> str:
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{user}:{password}@" if user else ""
        return f"{self.scheme}://{auth}127.0.0.1:{self.port}{mount}"

    def start(self, timeout: float = 20.0) -> None:
        cmd = [str(SYSTEM_PYTHON), str(SERVER_SCRIPT), "--port", str(self.port), *self.args]
        if self.user:
            cmd += ["--user", self.user, "--password", self.password]
        deadline = time.monotonic() + timeout
        while True:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            self.proc.stdout.close()  # nothing more is printed after READY
            if line.startswith("READY"):
                return
            self.proc.wait(5)
            # The port may still be held a moment after a kill: try again.
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start: {line!r}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: the camera vanishes without closing anything."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def server_args(clip: Path) -> list[str]:
    """The RTSP server's mounts: /clip (``clip``), /live (test pattern), /car (real footage when present)."""
    args = ["--file", f"/clip={clip}", "--live", "/live"]
    car = SHARED / "media" / "intel_car-detection.mp4"
    if car.is_file():
        args += ["--file", f"/car={car}"]
    return args


# ------------------------------------------------------------------ MJPEG HTTP

AXIS_MJPEG = SHARED / "media" / "vi3o_axis_mjpeg_http_multipart.mjpg"


def generated_mjpeg(frames: int = 16, size: tuple[int, int] = (160, 120), quality: int = 60) -> bytes:
    """A multipart body in the Axis layout (``--myboundary``, Content-Length) of our own
    JPEGs: :func:`~helpers.clips.moving_block` pictures, ~2-3 KB each at 160x120, so at
    8 fps the camera sends ~20 KB/s, as the low-bitrate Axis capture does."""
    import cv2

    width, height = size
    body = b""
    for i in range(frames):
        ok, jpeg = cv2.imencode(".jpg", moving_block(i, i / 8, width, height), [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        body += (b"--myboundary\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                 % len(jpeg)) + jpeg.tobytes() + b"\r\n"
    return body


class MjpegServer:
    """A loopback HTTP server replaying a camera's multipart body (the Axis capture, or
    :func:`generated_mjpeg`), one part every ``1 / fps`` seconds, in a loop."""

    def __init__(self, body: bytes, *, fps: float = 10.0, user: str = "", password: str = "") -> None:
        import base64
        import re

        parts = [p for p in re.split(rb"(?=--myboundary\r\n)", body) if p]
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                owner.requests += 1
                if expected is not None and self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="camera"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                # Axis: the header names the boundary without dashes; the body uses --myboundary.
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=myboundary")
                self.end_headers()
                try:
                    while not owner.stopping.is_set():
                        for part in parts:
                            self.wfile.write(part)
                            self.wfile.flush()
                            if owner.stopping.wait(1.0 / fps):
                                return
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.stopping = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="mjpeg-server", daemon=True)
        self.thread.start()

    def url(self, *, auth: str = "") -> str:
        return f"http://{auth}127.0.0.1:{self.port}/axis-cgi/mjpg/video.cgi"

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def has_openssl() -> bool:
    return shutil.which("openssl") is not None
