"""``python -m bench.fleet_capacity``: what the fleet costs per camera vs one process (issue 13).

Fair setup, equal CPU: everything under test shares ONE core (the first usable one),
the driver (this process) runs on the others.

- single: one ``serve`` (SQLite event store, the default) with N cameras;
- fleet: nats-server (JetStream) + 2 ``serve`` replicas (``--events nats://``) sharing
  the same cameras file, N/2 cameras each once the leases balance
  (vision_stream/testing/fleet_cluster.py).

Every camera loops samples/sample.mp4 at source speed on the offline analyzer. After all N
run and ``--warmup`` seconds pass, a ``--seconds`` window is measured: each camera's media
time (Stats.media_seconds via ListSessions) against wall time; "held" = every camera's rate
>= 0.95 over the whole window and over every 10 s slice of it. CPU = utime + stime from
/proc/<pid>/stat of each process under test (all threads). JetStream writes = the streams'
message and byte counts (events stream and the KV leases bucket) before and after the window.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.common import table
from vision_stream.testing.fleet_cluster import INSTALL, SAMPLE, Cluster, nats_server_binary
from vision_stream.testing.nats_server import free_port, wait_listening
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

HELD_RATE = 0.95
SLICE = 10.0
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads: /proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def media_times(targets: list[str]) -> dict[str, float]:
    """camera -> media seconds, over every target's running sessions. In a fleet each replica also
    lists the cameras others run, from the store (stats as last persisted): the largest is the owner's."""
    out: dict[str, float] = {}
    for target in targets:
        async with grpc.aio.insecure_channel(target) as channel:
            listed = await pb_grpc.VisionStreamStub(channel).ListSessions(pb.ListSessionsRequest(), timeout=10)
        for info in listed.sessions:
            if info.state == "running":
                out[info.session_id] = max(out.get(info.session_id, 0.0), info.stats.media_seconds)
    return out


async def stream_counts(url: str) -> dict[str, tuple[int, int]]:
    """JetStream stream name -> (last sequence, bytes) on the server at ``url``: the sequence counts
    every write, also a KV bucket's (which keeps one message per key, so its message count stays put)."""
    import nats

    client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        infos = await client.jetstream().streams_info()
        return {i.config.name or "?": (i.state.last_seq, i.state.bytes) for i in infos}
    finally:
        await client.close()


@dataclass
class Result:
    setup: str
    cameras: int
    window: float
    rates: dict[str, list[float]] = field(default_factory=dict)  # camera -> whole-window rate, then slices
    cpu: dict[str, float] = field(default_factory=dict)  # process label -> CPU seconds in the window
    writes: dict[str, tuple[int, int]] = field(default_factory=dict)  # stream -> (messages, bytes) added

    @property
    def worst_rate(self) -> float:
        return min((min(r) for r in self.rates.values()), default=0.0)

    @property
    def held(self) -> bool:
        return len(self.rates) == self.cameras and self.worst_rate >= HELD_RATE


async def measure(setup: str, n: int, targets: list[str], pids: dict[str, int], seconds: float,
                  warmup: float, nats_url: str | None) -> Result:
    """Wait for all ``n`` cameras to run, warm up, then sample media time and CPU over the window."""
    deadline = time.monotonic() + 90.0
    while len(await media_times(targets)) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{setup}: not all {n} cameras running: {sorted(await media_times(targets))}")
        await asyncio.sleep(1.0)
    await asyncio.sleep(warmup)
    result = Result(setup, n, seconds)
    cpu0 = {label: cpu_seconds(pid) for label, pid in pids.items()}
    js0 = await stream_counts(nats_url) if nats_url else {}
    samples = [(time.monotonic(), await media_times(targets))]
    while samples[-1][0] - samples[0][0] < seconds:
        await asyncio.sleep(SLICE - (time.monotonic() - samples[0][0]) % SLICE)
        samples.append((time.monotonic(), await media_times(targets)))
    result.cpu = {label: cpu_seconds(pid) - cpu0[label] for label, pid in pids.items()}
    if nats_url:
        js1 = await stream_counts(nats_url)
        result.writes = {k: (v[0] - js0.get(k, (0, 0))[0], v[1] - js0.get(k, (0, 0))[1]) for k, v in js1.items()}
    result.window = samples[-1][0] - samples[0][0]
    (t0, m0), (t1, m1) = samples[0], samples[-1]
    for cam in m0:
        whole = (m1.get(cam, 0.0) - m0[cam]) / (t1 - t0)
        # A camera that moved to another replica (or restarted) mid-window shows up as missing or reset.
        slices = [(b.get(cam, 0.0) - a.get(cam, 0.0)) / (tb - ta)
                  for (ta, a), (tb, b) in itertools.pairwise(samples)]
        result.rates[cam] = [whole, *slices]
    return result


def cameras_file(directory: Path, names: list[str]) -> Path:
    """The same cameras file Cluster writes (looping sample, offline analyzer)."""
    path = directory / "cameras.toml"
    path.write_text("".join(f'[cameras.{name}]\nsource = "{SAMPLE}"\nloop = true\nbackend = "local"\n'
                            f"commentary_interval = 1.0\n" for name in names))
    return path


def start_single(directory: Path, names: list[str], port: int) -> subprocess.Popen[bytes]:
    """One ``serve`` with the default (SQLite) event store, as a single machine runs it."""
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["XDG_DATA_HOME"] = str(directory / "xdg")
    argv = [sys.executable, "-m", "vision_stream.cli", "serve", "--port", str(port), "--http-port",
            str(free_port()), "--config", str(cameras_file(directory, names)), "--max-sessions",
            str(len(names) + 4), "--grace", "5"]
    with open(directory / "single.log", "a") as log:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, env=env)


async def run_single(directory: Path, names: list[str], seconds: float, warmup: float, core: int) -> Result:
    port = free_port()
    proc = start_single(directory, names, port)
    try:
        pin(proc.pid, core)
        wait_listening(port, proc, 30.0)
        return await measure("single", len(names), [f"127.0.0.1:{port}"], {"serve": proc.pid},
                             seconds, warmup, None)
    finally:
        proc.kill()
        proc.wait()


async def bucket_exists(cluster: Cluster, within: float = 30.0) -> None:
    """Until the first replica has created the leases bucket (Cluster.leases raises before)."""
    from nats.js.errors import BucketNotFoundError

    deadline = time.monotonic() + within
    while True:
        try:
            await cluster.leases()
            return
        except BucketNotFoundError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def run_fleet(directory: Path, names: list[str], seconds: float, warmup: float, core: int) -> Result:
    cluster = Cluster(directory, names, replicas=2, ttl=6.0, serve_args=("--max-sessions", str(len(names) + 4)))
    try:
        cluster.start()
        pids = {r.id: r.proc.pid for r in cluster.replicas if r.proc is not None}
        assert cluster.nats.proc is not None
        pids["nats-server"] = cluster.nats.proc.pid
        for pid in pids.values():
            pin(pid, core)
        await bucket_exists(cluster)
        await cluster.balanced(90.0)
        return await measure("fleet", len(names), [r.target for r in cluster.replicas], pids,
                             seconds, warmup, cluster.url)
    finally:
        cluster.close()


def pin(pid: int, core: int) -> None:
    """Every thread of ``pid`` onto ``core`` (sched_setaffinity(2) is per thread; threads started
    later inherit their creator's mask, so the whole process stays there)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {core})
        except ProcessLookupError:  # a thread that just ended
            pass


def report(results: list[Result]) -> str:
    rows = []
    for r in results:
        total = sum(r.cpu.values())
        rows.append((r.setup, r.cameras, "yes" if r.held else "no", round(r.worst_rate, 3),
                     round(100 * total / r.window, 1), round(100 * total / r.window / r.cameras, 2),
                     round(r.cameras / (total / r.window), 1) if total else 0.0,
                     ", ".join(f"{k} {100 * v / r.window:.1f}" for k, v in r.cpu.items())))
    out = table(["setup", "cameras", "held", "worst rate", "CPU % total", "CPU % per camera",
                 "cameras per core (at this CPU)", "CPU % by process"], rows)
    for r in results:
        for stream, (msgs, size) in r.writes.items():
            # Bytes grow only on an append-only stream (the events); a KV bucket overwrites in place.
            rate, kib = msgs / r.window, size / r.window / 1024
            out += f"\n- {r.setup} JetStream `{stream}`: {rate:.1f} writes/s, stored bytes {kib:+.1f} KiB/s"
    return out


async def run(counts: list[int], seconds: float, warmup: float, out: Path, core: int) -> list[Result]:
    results = []
    for n in counts:
        names = [f"cam-{i:02d}" for i in range(n)]
        for setup, runner in (("single", run_single), ("fleet", run_fleet)):
            directory = out / f"{setup}-{n}"
            directory.mkdir()
            result = await runner(directory, names, seconds, warmup, core)
            print(f"{setup} {n} cameras: held={result.held} worst rate {result.worst_rate:.3f}, "
                  f"CPU {100 * sum(result.cpu.values()) / result.window:.1f} %", flush=True)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_capacity", description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", default="16", help="camera counts to try, comma-separated (default 16)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after all cameras run (default 10)")
    args = parser.parse_args(argv)
    if nats_server_binary() is None:
        print(f"nats-server is not installed: {INSTALL}", file=sys.stderr)
        return 2
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:  # the driver off the core under test (threads it starts later inherit this)
        os.sched_setaffinity(0, set(cores[1:]))
    print(f"under test: core {cores[0]}; driver: cores {cores[1:] or cores}", flush=True)
    counts = [int(c) for c in args.cameras.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-fleet-capacity-") as tmp:
        results = asyncio.run(run(counts, args.seconds, args.warmup, Path(tmp), cores[0]))
    print()
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
