"""``python -m bench`` (from a checkout): every scenario, a table, summary lines, RESULTS.md.

Scenarios: ingest, latency, concurrency, memory (see each module). Inputs
are generated with PyAV on first use and cached (``--cache-dir``). ``--quick``
shortens every run (fewer repetitions, shorter real-time runs) for a rough
look in a few minutes; ``--tiny`` is the smoke-test size (seconds, not
meaningful figures).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import REPO, Results, machine_facts
from bench.inputs import InputSpec, ensure_input
from bench.report import write_results

SCENARIOS = ("ingest", "latency", "concurrency", "memory")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer runs, shorter real-time runs (rough figures)")
    p.add_argument("--tiny", action="store_true", help="smoke-test size: tiny inputs, one run each")
    p.add_argument("--runs", type=int, default=None, help="repetitions per ingest measurement (default 5, quick 3)")
    p.add_argument("--seconds", type=float, default=None,
                   help="real-time seconds per latency/concurrency run (default 20, quick 10)")
    p.add_argument("--memory-minutes", type=float, default=10.0, help="memory scenario length (default 10)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    p.add_argument("--no-live", action="store_true", help="skip the live-backend concurrency runs")
    p.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "vision-stream-bench")
    p.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md",
                   help="where to write the results (default bench/RESULTS.md)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    seconds_of_video = 4.0 if args.tiny else 60.0
    runs = args.runs or (1 if args.tiny else 3 if args.quick else 5)
    rt_seconds = args.seconds or (2.0 if args.tiny else 10.0 if args.quick else 20.0)
    memory_minutes = 0.05 if args.tiny else args.memory_minutes
    heights = (240,) if args.tiny else (1080, 720)
    specs = {(h, g): InputSpec(height=h, seconds=seconds_of_video, gop_seconds=g) for h in heights for g in (1.0, 2.0)}
    started = time.monotonic()
    print(f"bench: inputs in {args.cache_dir} (generated on first use)", flush=True)
    paths = {key: ensure_input(spec, args.cache_dir) for key, spec in specs.items()}
    big, small = heights[0], heights[-1]
    results = Results()
    facts = machine_facts()
    print("bench: " + "; ".join(f"{k}: {v}" for k, v in facts.items()), flush=True)

    if "ingest" in chosen:
        from bench.ingest import run_ingest

        run_ingest([(specs[(big, g)], paths[(big, g)]) for g in (1.0, 2.0)], runs, results)
    if "latency" in chosen:
        from bench.latency import run_latency

        run_latency(paths[(big, 1.0)], paths[(small, 1.0)], rt_seconds, results,
                    fanout_counts=(1, 10) if args.tiny else (1, 10, 100))
    if "concurrency" in chosen:
        from bench.sessions import run_concurrency

        run_concurrency(paths[(small, 1.0)], rt_seconds, results, live=not args.no_live,
                        max_sessions=2 if args.tiny else 64)
    if "memory" in chosen:
        # A fresh process: the RSS baseline must not carry the other scenarios' heap.
        out = subprocess.run([sys.executable, "-m", "bench.sessions", "memory", str(paths[(small, 1.0)]),
                              str(memory_minutes)], capture_output=True, text=True, cwd=REPO, check=True)
        child = json.loads(out.stdout.strip().splitlines()[-1])
        for name, value in child["summary"].items():
            results.add(name, value)
        for title, body in child["sections"]:
            results.section(title, body)

    elapsed = time.monotonic() - started
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    print("\n# summary", flush=True)
    for name, value in results.summary.items():
        print(f"{name}={value}")
    if not args.tiny or args.results != REPO / "bench" / "RESULTS.md":
        write_results(args.results, results, facts, mode=mode, runs=runs, rt_seconds=rt_seconds,
                      memory_minutes=memory_minutes, elapsed=elapsed)
        print(f"bench: wrote {args.results} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
