"""A real RTSP camera: Debian's GStreamer RTSP server (gst-rtsp-server), for the camera
tests (tests/helpers/cameras.py runs it as a subprocess) and the Compose stack's test
camera (docker/rtsp-camera/Dockerfile runs this very file).

Run with Debian's own ``/usr/bin/python3`` (the interpreter ``python3-gi`` is
built for), never the project venv, and as a file, not ``-m``: the package's
``__init__`` imports the project's dependencies, this file must not::

    /usr/bin/python3 vision_stream/testing/rtsp_camera.py --port 8554 \
        --file /clip=/tmp/clip.mp4 --file /car=../shared/media/intel_car-detection.mp4 \
        --live /live --user cam --password secret [--tls-cert cert.pem --tls-key key.pem]

- ``--file MOUNT=PATH`` serves an H.264 + AAC MP4/MKV/TS file without
  re-encoding (no decoder plugins needed); each client gets its own pipeline
  from the start of the file, and the stream ends with the file (a vision-stream
  camera then reconnects, as after any drop, and gets the file from the start
  again: that is how the Compose camera loops the sample).
  ``--video-file`` serves the video track only (RTP cannot signal an audio
  format change mid-session; a camera that changes it must be reconnected).
- ``--live MOUNT`` serves an endless live test pattern (x264, one keyframe every
  2 s), shared between clients, so a second client joins mid-GOP.
- ``--user/--password`` require HTTP Basic auth on every mount.
- ``--tls-cert/--tls-key`` serve ``rtsps://`` (RTSP over TLS) instead.

Prints ``READY <port>`` on stdout once listening; exits on SIGTERM/SIGINT.
This file is stdlib + gi only: it must not import the project or pytest.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402

_DEMUX = {".mp4": "qtdemux", ".mov": "qtdemux", ".mkv": "matroskademux", ".ts": "tsdemux"}


def _file_launch(path: str, *, audio: bool = True) -> str:
    demux = _DEMUX.get(os.path.splitext(path)[1].lower())
    if demux is None:
        raise SystemExit(f"unsupported container: {path}")
    # config-interval=-1: SPS/PPS before every IDR, so a client that joins or
    # reconnects can start decoding at the next keyframe.
    launch = (
        f'( filesrc location="{path}" ! {demux} name=d '
        "d. ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 "
    )
    if audio:
        launch += "d. ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 "
    return launch + ")"


_LIVE_LAUNCH = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=20 bitrate=300 "
    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", action="append", default=[], metavar="MOUNT=PATH")
    parser.add_argument("--video-file", action="append", default=[], metavar="MOUNT=PATH",
                        help="like --file, video track only")
    parser.add_argument("--live", action="append", default=[], metavar="MOUNT")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--tls-cert", default="")
    parser.add_argument("--tls-key", default="")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    factories: list[GstRtspServer.RTSPMediaFactory] = []
    for spec, audio in [(s, True) for s in args.file] + [(s, False) for s in args.video_file]:
        mount, _, path = spec.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(_file_launch(path, audio=audio))
        factory.set_shared(False)
        mounts.add_factory(mount, factory)
        factories.append(factory)
    for mount in args.live:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(_LIVE_LAUNCH)
        factory.set_shared(True)
        mounts.add_factory(mount, factory)
        factories.append(factory)

    if args.user or args.tls_cert:
        auth = GstRtspServer.RTSPAuth()
        if args.tls_cert:
            cert = Gio.TlsCertificate.new_from_files(args.tls_cert, args.tls_key)
            auth.set_tls_certificate(cert)
        token = GstRtspServer.RTSPToken.new()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        if args.user:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        else:
            auth.set_default_token(token)
        server.set_auth(auth)
        for factory in factories:
            factory.add_role_from_structure(
                Gst.Structure.from_string(
                    "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
                )[0]
            )

    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
