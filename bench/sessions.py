"""Scenarios concurrency and memory: many real-time (paced) file sessions in one process.

*Concurrency*: how many paced 720p30 sessions (1 fps sampling) one machine
holds with no unintended drops, every session keeping up with real time, and
the event loop never blocked over 50 ms. First the CPU of one session-second
is measured with a few sessions; the capacity estimate (80 % of the cores
over that) is the first count tried, then the search steps up (x5/4) while
counts hold or down (x3/4) until one does, and bisects between the largest
count that held and the smallest that failed. A count that fails is run once
more before it counts as failed (one-off stalls from outside the process
happen on a shared machine); every runner is searched the same way.
Baseline A is a thread per session reading every frame with OpenCV at 30 fps
and sending one Pillow JPEG a second (the cookbook loop). It has no event
loop, so it is held to the equivalent limit: no session may fall more than
50 ms behind its source (each frame read no later than 50 ms after its due
time), the same bound as the loop's stalls, which is what would delay our
sessions' hand-over to the backend.

*Memory*: 8 paced sessions for ``minutes``; RSS sampled every 5 s. RSS per
session is (RSS after the first minute - RSS before) / 8; growth is the
change from the first minute to the end.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Results, cpu_seconds_self, have_pillow, table

__all__ = ["run_concurrency", "run_memory"]

LAG_LIMIT_MS = 50.0
HEADROOM = 0.8  # fraction of the cores an estimate may plan to use


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(slots=True)
class Run:
    sessions: int
    seconds: float
    cpu: float  # CPU seconds used by the whole process during the run
    max_lag_ms: float
    dropped: int
    behind_s: float  # worst media-time lag behind wall time at the end, seconds
    rss: list[int]

    @property
    def cpu_per_session(self) -> float:
        """CPU seconds per session per wall second (1.0 = one core)."""
        return self.cpu / self.seconds / max(self.sessions, 1)

    @property
    def held(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> str:
        """Which criteria failed ("" when the run held)."""
        why = []
        if self.dropped:
            why.append(f"{self.dropped} dropped")
        if self.max_lag_ms > LAG_LIMIT_MS:
            why.append(f"lag {self.max_lag_ms:.0f} ms")
        if self.behind_s >= 1.5:
            why.append(f"{self.behind_s:.1f} s behind")
        return ", ".join(why)


async def _lag_monitor(stop: asyncio.Event, worst: list[float]) -> None:
    """Largest delay of a 10 ms sleep: how long the loop was blocked."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(0.01)
        worst[0] = max(worst[0], (loop.time() - t - 0.01) * 1000)


async def _run_sessions(n: int, path: Path, seconds: float, backend_factory: Callable[[], Any],
                        rss_every: float = 0.0) -> Run:
    from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
    from vision_stream.media.file_source import FileSource
    from vision_stream.pipeline import Session

    sampling = SamplingPolicy()
    backend = backend_factory()
    sessions = []
    for i in range(n):
        source = await asyncio.to_thread(FileSource, path, audio=AudioPolicy(), loop=True,
                                         sample_interval=1.0 / sampling.fps)
        sessions.append(Session(settings=SessionSettings(session_id=f"s{i}"), source=source, backend=backend,
                                sampling=sampling, limits=Limits(), paced=True, lossless=False))
    stop, worst = asyncio.Event(), [0.0]
    monitor = asyncio.create_task(_lag_monitor(stop, worst))
    rss = [rss_bytes()]
    cpu0, t0 = cpu_seconds_self(), time.monotonic()
    runners = [asyncio.create_task(s.run()) for s in sessions]
    await asyncio.sleep(2.0)  # start-up (backend open, first decode) is not steady state
    worst[0] = 0.0
    cpu0, t0 = cpu_seconds_self(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(min(rss_every or seconds, seconds - (time.monotonic() - t0)))
        rss.append(rss_bytes())
    cpu, elapsed = cpu_seconds_self() - cpu0, time.monotonic() - t0
    stats = [s.stats() for s in sessions]
    wall_total = time.monotonic() - (t0 - 2.0)
    behind = max(wall_total - st.media_seconds for st in stats) if stats else 0.0
    for s in sessions:
        s.stop("bench done")
    await asyncio.gather(*runners, return_exceptions=True)
    stop.set()
    await monitor
    return Run(n, elapsed, cpu, worst[0], sum(st.frames_dropped for st in stats), behind, rss)


def _local() -> Any:
    from vision_stream.backends.local import LocalBackend

    return LocalBackend()


def _live(url: str) -> Callable[[], Any]:
    def make() -> Any:
        from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveSettings

        return GeminiLiveBackend(LiveSettings(base_url=url, api_key="bench-key"))

    return make


def _cookbook_sessions(n: int, path: Path, seconds: float) -> Run:
    """Baseline A, real time: per session a thread reads every frame at 30 fps, one Pillow JPEG a second."""
    import cv2
    from PIL import Image

    stop = threading.Event()
    behind = [0.0] * n

    def worker(i: int) -> None:
        cap = cv2.VideoCapture(str(path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        start, index = time.monotonic(), 0
        while not stop.is_set():
            ok, frame = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            if index % round(fps) == 0:
                image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                image.thumbnail((768, 768))
                image.save(io.BytesIO(), format="JPEG", quality=80)
            index += 1
            delay = index / fps - (time.monotonic() - start)
            behind[i] = max(behind[i], -delay)
            if delay > 0:
                stop.wait(delay)
        cap.release()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    behind[:] = [0.0] * n
    cpu0, t0 = cpu_seconds_self(), time.monotonic()
    time.sleep(seconds)
    cpu, elapsed = cpu_seconds_self() - cpu0, time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(5)
    worst = max(behind, default=0.0)
    # No event loop: the equivalent of a loop stall is a session reading a frame late.
    return Run(n, elapsed, cpu, worst * 1000, 0, worst, [])


@dataclass(slots=True)
class Search:
    """A capacity search: the sessions held, the CPU probe and every count tried."""

    held: int
    probe: Run
    check: Run  # the run that validated ``held`` (or the last failed one when nothing held)
    tried: list[tuple[int, str]]  # (sessions, "held" or the failed criteria), in order


def _capacity(measure: Callable[[int], Run], probe_n: int, cap: int) -> Search:
    """Largest session count (at most ``cap``) that holds; see the module docstring."""
    probe = measure(min(probe_n, cap))
    cores = len(os.sched_getaffinity(0))
    n = min(cap, max(1, int(cores * HEADROOM / max(probe.cpu_per_session, 1e-6))))
    lo, hi = 0, cap + 1  # largest count that held, smallest that failed
    best: Run | None = None
    last = probe
    tried: list[tuple[int, str]] = []
    while hi - lo > max(1, lo // 8):
        run = measure(n)
        if not run.held:
            tried.append((n, "retry: " + run.failures))
            run = measure(n)
        tried.append((n, run.failures or "held"))
        last = run
        if run.held:
            lo, best = n, run
        else:
            hi = n
        if hi == cap + 1:
            n = min(cap, max(n + 1, n * 5 // 4))
        elif lo == 0:
            n = max(1, n * 3 // 4) if n > 1 else 0
            if n == 0:
                break
        else:
            n = (lo + hi) // 2
    return Search(lo, probe, best or last, tried)


def run_concurrency(path_720: Path, seconds: float, results: Results, *, live: bool = True,
                    max_sessions: int = 64) -> None:
    from bench.procs import emulator

    rows = []
    cores = len(os.sched_getaffinity(0))
    caps: dict[str, int] = {}

    tried: list[str] = []

    def record(name: str, search: Search) -> None:
        caps[name] = search.held
        check = search.check
        rows.append([name, round(search.probe.cpu_per_session * 100, 2), round(check.cpu_per_session * 100, 2),
                     search.held, round(search.held / cores, 2), round(check.max_lag_ms, 1), check.dropped,
                     round(check.behind_s, 2)])
        tried.append(f"{name}: " + "; ".join(f"{n} {verdict}" for n, verdict in search.tried))
        print(f"bench: concurrency {name}: held {search.held} ({tried[-1]})", flush=True)

    # The machine's own noise: the loop with no session at all, same process set-up.
    idle = asyncio.run(_run_sessions(0, path_720, min(seconds, 5.0), _local))
    if have_pillow():
        record("A_cookbook", _capacity(lambda n: _cookbook_sessions(n, path_720, seconds), 2, max_sessions))
    record("vision-stream local", _capacity(
        lambda n: asyncio.run(_run_sessions(n, path_720, seconds, _local)), 4, max_sessions))
    if live:
        with emulator() as url:
            record("vision-stream live (emulator)", _capacity(
                lambda n: asyncio.run(_run_sessions(n, path_720, seconds, _live(url))), 4, max_sessions))
    results.add("concurrency_720p_local_sessions_per_core", caps["vision-stream local"] / cores, ".2f")
    if "A_cookbook" in caps:
        results.add("concurrency_720p_baseline_A_sessions_per_core", caps["A_cookbook"] / cores, ".2f")
        results.add("concurrency_720p_local_x_vs_baseline_A", caps["vision-stream local"] / max(caps["A_cookbook"], 1))
    if live and "A_cookbook" in caps:
        results.add("concurrency_720p_live_sessions_per_core", caps["vision-stream live (emulator)"] / cores, ".2f")
        results.add("concurrency_720p_live_x_vs_baseline_A",
                    caps["vision-stream live (emulator)"] / max(caps["A_cookbook"], 1))
    results.section("Concurrency", table(
        ["runner", "CPU % per session (probe)", "CPU % per session (held N)", "held N", "sessions/core",
         "max loop lag ms", "dropped", "worst behind s"], rows)
        + f"\n\n{seconds:g} s per run after 2 s of start-up; held = no drops, loop lag <= {LAG_LIMIT_MS:g} ms "
        f"(baseline A, which has no loop: no frame read more than {LAG_LIMIT_MS:g} ms late), every session "
        "within 1.5 s of real time; a count that fails is run once more. The Live emulator runs in its own "
        f"process on the same cores. The idle loop (no session) stalled at most {idle.max_lag_ms:.1f} ms "
        "in this run.\n\nCounts tried, in order:\n\n" + "\n".join(f"- {t}" for t in tried))


def run_memory(path_720: Path, minutes: float, results: Results) -> None:
    run = asyncio.run(_run_sessions(8, path_720, minutes * 60.0, _local, rss_every=5.0))
    first_min = min(len(run.rss) - 1, max(1, int(60 / 5)))
    per_session = (run.rss[first_min] - run.rss[0]) / 8
    growth = (run.rss[-1] - run.rss[first_min]) / run.rss[first_min]
    results.add("memory_rss_per_session_mib", per_session / 2**20, ".1f")
    results.add("memory_rss_growth_8_sessions_pct", growth * 100, ".2f")
    samples = ", ".join(f"{r / 2**20:.0f}" for r in run.rss[:: max(1, len(run.rss) // 12)])
    results.section("Memory", table(
        ["sessions", "minutes", "RSS before MiB", "RSS at 1 min MiB", "RSS end MiB", "per session MiB", "growth %"],
        [[8, minutes, run.rss[0] / 2**20, run.rss[first_min] / 2**20, run.rss[-1] / 2**20, per_session / 2**20,
          growth * 100]]) + f"\n\nRSS samples (MiB): {samples}. Max loop lag {run.max_lag_ms:.1f} ms, "
        f"dropped {run.dropped}.")


def main(argv: list[str]) -> None:
    """Child-process entry for the memory scenario (a fresh process: clean RSS baseline).

    ``python -m bench.sessions memory PATH MINUTES`` prints one JSON line with
    the summary lines and the section.
    """
    import json

    results = Results()
    run_memory(Path(argv[1]), float(argv[2]), results)
    print(json.dumps({"summary": results.summary, "sections": results.sections}))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
