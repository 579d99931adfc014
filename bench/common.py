"""Shared helpers: CPU accounting, medians, machine facts, summary lines."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CpuSample",
    "Results",
    "cpu_seconds_self",
    "machine_facts",
    "median",
    "run_measured",
]

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds_self() -> float:
    """User + system CPU seconds of this process, all threads included."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass(frozen=True, slots=True)
class CpuSample:
    """One measured run: ``work`` CPU seconds of the conversion itself (Python
    tools measure around the call, after imports), ``process`` CPU seconds of
    the whole child (interpreter start included), ``wall`` seconds, JPEG count
    and mean JPEG size (bytes), for checking the tools did the same job."""

    work: float
    process: float
    wall: float
    frames: int
    mean_bytes: float


def _jpeg_stats(out_dir: Path) -> tuple[int, float]:
    files = [p for p in out_dir.iterdir() if p.suffix == ".jpg"]
    if not files:
        return 0, 0.0
    return len(files), sum(p.stat().st_size for p in files) / len(files)


def run_measured(argv: Sequence[str], out_dir: Path, *, reports_work: bool) -> CpuSample:
    """Run ``argv`` as a child and charge it its own CPU (``os.wait4`` rusage).

    ``reports_work``: the child prints one JSON line ``{"cpu": s}`` with the CPU
    spent on the conversion proper (the Python workers do); otherwise the
    whole child's CPU is the work (FFmpeg's start-up is a few milliseconds).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in out_dir.iterdir():
        p.unlink()
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {stderr.decode(errors='replace')[-800:]}")
    process_cpu = usage.ru_utime + usage.ru_stime
    work = process_cpu
    if reports_work:
        line = [ln for ln in stdout.decode().splitlines() if ln.startswith("{")][-1]
        work = float(json.loads(line)["cpu"])
    frames, mean_bytes = _jpeg_stats(out_dir)
    return CpuSample(work=work, process=process_cpu, wall=wall, frames=frames, mean_bytes=mean_bytes)


def have_pillow() -> bool:
    """Baseline A needs Pillow (``pip install -e '.[bench]'``); without it A is skipped, saying so."""
    import importlib.util

    if importlib.util.find_spec("PIL") is not None:
        return True
    print("bench: Pillow not installed: baseline A skipped (pip install -e '.[bench]')", flush=True)
    return False


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ffmpeg_version() -> str:
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0].split(" Copyright")[0]
    except (OSError, subprocess.CalledProcessError):
        return "absent"


def machine_facts() -> dict[str, str]:
    """Cores, CPU model, memory and the versions of every library that does the work."""
    import av
    import cv2
    import numpy

    facts = {
        "cores (os.cpu_count)": str(os.cpu_count()),
        "cores usable (sched_getaffinity)": str(len(os.sched_getaffinity(0))),
        "cpu model": _cpu_model(),
        "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "PyAV": av.__version__,
        "libavcodec (PyAV)": ".".join(map(str, av.library_versions["libavcodec"])),
        "opencv": cv2.__version__,
        "numpy": numpy.__version__,
        "ffmpeg CLI": _ffmpeg_version(),
    }
    for name in ("PIL", "simplejpeg", "grpc", "websockets"):
        try:
            mod = __import__(name)
            facts[name] = getattr(mod, "__version__", "?")
        except ImportError:
            facts[name] = "absent"
    return facts


@dataclass(slots=True)
class Results:
    """Summary lines (``name=value``), table sections and notes for RESULTS.md."""

    summary: dict[str, str] = field(default_factory=dict)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, markdown body)

    def add(self, name: str, value: float | int | str, fmt: str = ".3f") -> None:
        text = format(value, fmt) if isinstance(value, float) else str(value)
        self.summary[name] = text
        print(f"{name}={text}", flush=True)

    def section(self, title: str, body: str) -> None:
        self.sections.append((title, body))
        print(f"\n## {title}\n{body}", flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
