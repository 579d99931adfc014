"""The vision-stream side of the ingest scenario: ``vision-stream frames IN --out DIR``.

Run as ``python -m bench.vs_frames IN OUT_DIR [extra CLI flags]``. The
command's modules are imported first, then the CPU of ``cli.main`` itself is
measured (printed as ``{"cpu": seconds}``), as for baseline A: interpreter and
import start-up is a fixed cost per process, not per minute of video (the
runner reports the whole process's CPU too).
"""

from __future__ import annotations

import json
import sys

import vision_stream.media.frames_export  # noqa: F401  (import cost outside the measurement)
from bench.common import cpu_seconds_self
from vision_stream import cli


def main(argv: list[str]) -> None:
    src, out, *extra = argv
    start = cpu_seconds_self()
    code = cli.main(["frames", src, "--out", out, *extra])
    cpu = cpu_seconds_self() - start
    if code:
        raise SystemExit(code)
    print(json.dumps({"cpu": cpu}))


if __name__ == "__main__":
    main(sys.argv[1:])
