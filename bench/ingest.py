"""Scenario ingest: CPU seconds per minute of video to turn a file into the model's JPEGs.

Tools (all 1 fps, 768 px long side, comparable JPEG quality):

- ``vision-stream``: ``vision-stream frames IN --out DIR``;
- baseline A: OpenCV reads every frame + Pillow thumbnail/JPEG (cookbook);
- baseline B: ``ffmpeg -i IN -vf fps=1,scale=768:-2``;
- baseline C: the same with ``-skip_frame nokey`` (keyframes only).

Each tool runs ``runs`` times per input, interleaved (tool order rotates every
round, so drift in machine load hits every tool alike); the figure is the
median. Ratios are taken between medians of the same run.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.baselines import ffmpeg_cli
from bench.common import CpuSample, Results, have_pillow, median, run_measured, table
from bench.inputs import InputSpec

__all__ = ["run_ingest"]

Tool = Callable[[Path, Path], CpuSample]


def _tools() -> dict[str, Tool]:
    py = sys.executable
    tools: dict[str, Tool] = {
        "vision-stream": lambda src, out: run_measured(
            [py, "-m", "bench.vs_frames", str(src), str(out)], out, reports_work=True
        ),
    }
    if have_pillow():
        tools["A_opencv_pillow"] = lambda src, out: run_measured(
            [py, "-m", "bench.baselines.opencv_pillow", str(src), str(out)], out, reports_work=True
        )
    if ffmpeg_cli.available():
        tools["B_ffmpeg"] = lambda src, out: run_measured(
            ffmpeg_cli.command(src, out, keyframes_only=False), out, reports_work=False
        )
        tools["C_ffmpeg_nokey"] = lambda src, out: run_measured(
            ffmpeg_cli.command(src, out, keyframes_only=True), out, reports_work=False
        )
    return tools


def run_ingest(inputs: Sequence[tuple[InputSpec, Path]], runs: int, results: Results) -> None:
    """Measure every tool on every input; add summary lines and a table to ``results``."""
    tools = _tools()
    if not ffmpeg_cli.available():
        print("ingest: ffmpeg not found on PATH: baselines B and C skipped (apt-get install ffmpeg)", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vs-bench-ingest-") as tmp:
        for spec, path in inputs:
            samples: dict[str, list[CpuSample]] = {name: [] for name in tools}
            names = list(tools)
            for r in range(runs):
                order = names[r % len(names):] + names[: r % len(names)]
                for name in order:
                    samples[name].append(tools[name](path, Path(tmp) / name))
            per_min = 60.0 / spec.seconds
            med = {name: median([s.work for s in runs_]) * per_min for name, runs_ in samples.items()}
            for name, runs_ in samples.items():
                rows.append([
                    spec.label, name, med[name],
                    median([s.process for s in runs_]) * per_min,
                    median([s.wall for s in runs_]),
                    runs_[-1].frames, round(runs_[-1].mean_bytes / 1024, 1),
                    med[name] / med["vision-stream"] if med["vision-stream"] else float("nan"),
                ])
            label = spec.label
            results.add(f"ingest_{label}_vs_cpu_s_per_min", med["vision-stream"])
            for base, short in (("A_opencv_pillow", "A"), ("B_ffmpeg", "B"), ("C_ffmpeg_nokey", "C")):
                if base in med:
                    results.add(f"ingest_{label}_x_vs_baseline_{short}", med["vision-stream"] / med[base])
    body = table(
        ["input", "tool", "work CPU s/min", "process CPU s/min", "wall s", "JPEGs", "mean KiB", "x vs-stream"],
        rows,
    )
    body += (
        f"\n\nMedians of {runs} interleaved runs. *work CPU* excludes the Python interpreter's start-up and "
        "imports (measured around the conversion call; FFmpeg's whole process is its work). "
        "*process CPU* is the whole child process (``os.wait4`` rusage)."
    )
    results.section("Ingest", body)
