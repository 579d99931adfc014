"""``python -m bench.fleet``: takeover time after a replica is killed (issue 13 item 6).

A fleet on loopback (vision_stream/testing/fleet_cluster.py): nats-server with
JetStream and three ``serve`` replicas sharing a cameras file of three cameras
looping samples/sample.mp4 on the offline analyzer, at the default lease TTL
(6 s, renewed every 2 s) unless ``--ttl``. Each round: a subscriber on a replica
that does not own ``cam-a`` follows it; the owner is killed (SIGKILL); takeover
time = kill -> the subscriber's first event of the camera's new run (the new
owner's session_started, seq continuing: what a client sees). The dead replica is
replaced by a fresh one and the fleet left to rebalance before the next round.

Expected: TTL - (time since the last renewal, 0..TTL/3) + up to one tick (TTL/3)
+ the camera's start, i.e. between about 2/3 TTL and TTL + TTL/3 + start.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.common import table
from vision_stream.testing.fleet_cluster import INSTALL, Cluster, nats_server_binary
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

CAMERAS = ["cam-a", "cam-b", "cam-c"]


async def _one_kill(cluster: Cluster) -> float:
    """Kill cam-a's owner; seconds until a subscriber elsewhere sees the camera's new run."""
    owners = await cluster.balanced(60.0)
    victim = cluster.replica(owners["cam-a"])
    watcher = next(r for r in cluster.replicas if r.alive and r is not victim)
    seen: list[pb.Event] = []
    first_new = asyncio.get_running_loop().create_future()
    live = asyncio.Event()

    async def follow() -> None:
        async with grpc.aio.insecure_channel(watcher.target) as channel:
            stub = pb_grpc.VisionStreamStub(channel)
            listed = await stub.ListSessions(pb.ListSessionsRequest())
            info = next(i for i in listed.sessions if i.session_id == "cam-a")
            # From the current position: only live events, so the first of another run is the takeover.
            request = pb.SubscribeRequest(session_id="cam-a", run_id=info.run_id, after_seq=info.last_seq)
            async for event in stub.Subscribe(request):
                if event.run_id != info.run_id and not first_new.done():
                    first_new.set_result(time.monotonic())
                seen.append(event)
                live.set()

    task = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(live.wait(), 30.0)  # the subscription is live (its replay has begun)
        killed = time.monotonic()
        victim.kill()
        done = await asyncio.wait_for(first_new, 120.0)
    finally:
        task.cancel()
    cluster.add_replica()
    return float(done - killed)


async def run(kills: int, ttl: float, out: Path) -> list[float]:
    cluster = Cluster(out, CAMERAS, replicas=3, ttl=ttl)
    times = []
    try:
        cluster.start()
        for i in range(kills):
            took = await _one_kill(cluster)
            times.append(took)
            print(f"kill {i + 1}/{kills}: takeover {took:.2f} s", flush=True)
    finally:
        cluster.close()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--ttl", type=float, default=6.0, help="lease TTL, seconds (serve's default 6)")
    args = parser.parse_args(argv)
    if nats_server_binary() is None:
        print(f"nats-server is not installed: {INSTALL}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        times = asyncio.run(run(args.kills, args.ttl, Path(tmp)))
    rows = [("takeover after kill -9 (s)", len(times), statistics.median(times), min(times), max(times))]
    print()
    print(table(["measure", "kills", "median", "min", "max"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
