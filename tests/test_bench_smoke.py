"""Smoke test: ``python -m bench --tiny`` runs every scenario end to end on tiny inputs.

The benchmark's figures are never pass/fail; only that it runs and prints its
summary lines is checked here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # ~40 s: every bench scenario in a subprocess
@pytest.mark.timeout(170)
def test_bench_runs_end_to_end(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--no-live", "--cache-dir", str(tmp_path / "cache"),
         "--results", str(tmp_path / "RESULTS.md")],
        capture_output=True, text=True, cwd=REPO, timeout=160,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = dict(
        line.split("=", 1) for line in out.stdout.split("# summary", 1)[1].splitlines() if "=" in line
    )
    for name in ("ingest_240p_gop1_vs_cpu_s_per_min", "latency_fanout_10_subscribers_p99_ms",
                 "concurrency_720p_local_sessions_per_core", "memory_rss_growth_8_sessions_pct"):
        assert name in summary, name
    assert "## Targets" in (tmp_path / "RESULTS.md").read_text()
