"""``vision-stream doctor``: check this machine for what the server needs, and say what to fix.

One line per check, ``ok`` / ``warn`` / ``fail``, the thing checked, and for a
warn or fail the fix. Exit 0 when nothing failed, 1 otherwise. Every check
uses the code path the server itself uses (the models listing, the bind
probe of ``serve``, the cameras/sinks/tokens parsers), so a passing doctor
means ``serve`` with the same flags gets past start-up. The API key is only
ever sent in a header by :func:`list_models`; no line shows it (errors are
scrubbed by the listing, and this module never formats the key).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..backends.factory import BackendOptions
from ..errors import VisionStreamError

__all__ = ["Check", "cmd_doctor", "run_checks"]

KEY_TIMEOUT = 5.0  # seconds for the models call: a doctor must answer quickly
REQUIRED = ("grpcio", "protobuf", "av", "opencv-python-headless", "httpx", "websockets", "aiohttp",
            "prometheus-client")
OPTIONAL = {"aiomqtt": "MQTT sinks"}
CODECS: tuple[tuple[str, Literal["r", "w"], str], ...] = (
    ("h264", "r", "decode H.264 (files and cameras)"), ("mjpeg", "w", "encode JPEG (frames sent)"),
    ("aac", "r", "decode AAC (audio)"))
GST_PACKAGES = "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
_GST_PROBE = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"


@dataclass(frozen=True)
class Check:
    """One result line: ``level`` is ok, warn or fail."""

    level: str
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.level:4} {self.what}: {self.detail}"


def check_python() -> list[Check]:
    version = ".".join(map(str, sys.version_info[:3]))  # the package itself requires 3.11+
    out = [Check("ok", "python", f"{version} ({sys.executable})")]
    for name in REQUIRED:
        try:
            out.append(Check("ok", name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append(Check("fail", name, "not installed: pip install vision-stream (it is a dependency)"))
    for name, why in OPTIONAL.items():
        try:
            out.append(Check("ok", name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            out.append(Check("warn", name, f"not installed, needed for {why}: pip install {name}"))
    return out


def check_codecs() -> list[Check]:
    """PyAV's bundled FFmpeg: the decoders and encoder the pipeline opens by name."""
    import av

    out = []
    for name, mode, why in CODECS:
        try:
            av.codec.Codec(name, mode)
            out.append(Check("ok", f"ffmpeg {name}", f"{why} (FFmpeg {av.ffmpeg_version_info})"))
        except Exception:  # PyAV raises UnknownCodecError (a ValueError) or FFmpegError
            out.append(Check("fail", f"ffmpeg {name}", f"cannot {why}: reinstall PyAV from its wheel "
                                                      "(pip install --force-reinstall av), which bundles FFmpeg"))
    return out


def check_face_model() -> Check:
    """The offline analyzer's face detector is the Haar cascade that opencv-python's wheels ship."""
    import cv2

    data = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = Path(data) / "haarcascade_frontalface_default.xml" if data else None
    if path is not None and path.is_file():
        return Check("ok", "opencv face model", f"OpenCV {cv2.__version__}")
    return Check("warn", "opencv face model", "haarcascade_frontalface_default.xml missing (the offline analyzer "
                                              "reports no faces): pip install opencv-python-headless")


async def check_key(options: BackendOptions) -> Check:
    """A real ``GET /{version}/models`` at the configured base URL: present is not enough."""
    from ..backends.gemini_api import http_base
    from ..backends.gemini_rest import RestSettings, list_models
    from ..redact import redact_url

    if not options.api_key:
        return Check("warn", "GEMINI_API_KEY", "not set: sessions use the offline analyzer; for Gemini create a "
                                               "key at https://aistudio.google.com/apikey and export GEMINI_API_KEY")
    url = options.rest_url or options.live_url
    settings = RestSettings(base_url=http_base(url) if url else None, api_key=options.api_key.reveal(),
                            api_version=options.api_version)
    where = redact_url(settings.base)
    try:
        async with asyncio.timeout(KEY_TIMEOUT):
            models = await list_models(settings, max_pages=1)
    except TimeoutError:
        return Check("fail", "GEMINI_API_KEY", f"no answer from {where} within {KEY_TIMEOUT:g} s: check the network "
                                               "(or --rest-url)")
    except VisionStreamError as exc:
        status = getattr(exc, "http_status", 0)
        if status in (400, 401, 403):
            return Check("fail", "GEMINI_API_KEY", f"refused by {where} (HTTP {status}): the key is wrong or "
                                                   "revoked; create one at https://aistudio.google.com/apikey")
        return Check("fail", "GEMINI_API_KEY", f"{str(exc)[:200]}: check --rest-url / --api-version")
    live = sum(1 for model in models if model.live)
    return Check("ok", "GEMINI_API_KEY", f"accepted by {where}/{settings.api_version} ({len(models)} models, "
                                         f"{live} speak Live)")


def check_port(host: str, port: int, flag: str) -> Check:
    """The same bind probe ``serve`` runs before starting (server/app.py)."""
    from ..server.app import check_listen_address

    if flag == "--http-port" and port == 0:
        return Check("ok", flag, "0: the HTTP side is off")
    try:
        check_listen_address(host, port, flag=flag)
    except VisionStreamError as exc:
        return Check("fail", f"{flag} {port}", str(exc))
    return Check("ok", f"{flag} {port}", f"free on {host}")


def check_media_root(path: Path | None) -> Check:
    if path is None:
        return Check("warn", "--media-root", "not given: Watch of a file path is refused; pass a directory")
    if not path.is_dir():
        return Check("fail", "--media-root", f"{path} is not a directory: create it or pass another")
    return Check("ok", "--media-root", str(path))


def check_config(path: Path | None, env: dict[str, str]) -> list[Check]:
    """The cameras file parsed as ``serve --config`` does, sinks included."""
    from ..server.cameras import load_cameras
    from ..sinks.config import load_sinks

    if path is None:
        return [Check("ok", "--config", "none: no configured cameras")]
    try:
        cameras = load_cameras(path, env=env)
        sinks = load_sinks(path, env=env)
    except VisionStreamError as exc:
        return [Check("fail", "--config", f"{str(exc)[:300]}: fix the file")]
    return [Check("ok", "--config", f"{path}: {len(cameras)} cameras, {len(sinks)} sinks")]


def check_tokens(path: Path | None) -> Check:
    from ..server.auth import load_tokens

    if path is None:
        return Check("ok", "--auth-tokens", "none: every client has every right (loopback only)")
    try:
        load_tokens(path)
    except VisionStreamError as exc:
        return Check("fail", "--auth-tokens", f"{str(exc)[:300]}: fix the file (vision-stream token --help)")
    return Check("ok", "--auth-tokens", str(path))


def check_apt_tools() -> list[Check]:
    """System tools of optional features: the RTSP test camera and a local MQTT broker."""
    out = []
    try:
        gst = subprocess.run(["/usr/bin/python3", "-c", _GST_PROBE], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        gst = False
    out.append(Check("ok", "gst-rtsp-server", "present (the test RTSP camera runs)") if gst else
               Check("warn", "gst-rtsp-server", f"absent (only the test RTSP camera needs it): apt-get install "
                                                f"{GST_PACKAGES}"))
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else "")
    out.append(Check("ok", "mosquitto", mosquitto) if mosquitto else
               Check("warn", "mosquitto", "absent (only a local MQTT broker needs it): apt-get install mosquitto"))
    return out


async def run_checks(args: argparse.Namespace, options: BackendOptions, env: dict[str, str]) -> list[Check]:
    """Every check, in the order a user fixes things: software, key, then this server's flags."""
    syncs: list[Callable[[], list[Check]]] = [check_python, check_codecs, lambda: [check_face_model()]]
    checks = [check for step in syncs for check in step()]
    checks.append(await check_key(options))
    checks.append(check_port(args.host, args.port, "--port"))
    checks.append(check_port(args.host, args.http_port, "--http-port"))
    checks.append(check_media_root(args.media_root))
    checks += check_config(args.config, env)
    checks.append(check_tokens(args.auth_tokens))
    checks += check_apt_tools()
    return checks


async def cmd_doctor(args: argparse.Namespace, options: BackendOptions) -> int:
    """Print one line per check; exit 1 when any failed."""
    checks = await run_checks(args, options, dict(os.environ))
    for check in checks:
        print(check.line(), flush=True)
    failed = sum(check.level == "fail" for check in checks)
    warned = sum(check.level == "warn" for check in checks)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings", flush=True)
    return 1 if failed else 0
