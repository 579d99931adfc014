"""Sink targets under test: a signed-webhook receiver and a real mosquitto on loopback, and an
MQTT subscriber recording what the broker got (tests/server/test_sinks.py, tests/conditions)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from aiohttp import web

from helpers.cameras import free_port
from helpers.timing import scaled
from vision_stream.sinks.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

SECRET = "webhook-test-secret"
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
MOSQUITTO_MISSING = "needs mosquitto: apt-get install -y --no-install-recommends mosquitto"
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason=MOSQUITTO_MISSING)


class Receiver:
    """A webhook receiver on 127.0.0.1: checks each POST's signature; ``hang`` never answers."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.bodies: list[dict] = []
        self.bad_signatures = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hang:
            await asyncio.sleep(3600)
        if not verify(SECRET, request.headers.get(TIMESTAMP_HEADER, ""), body,
                      request.headers.get(SIGNATURE_HEADER, "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        self.bodies.append(json.loads(body))
        return web.Response(status=204)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@contextlib.contextmanager
def running_mosquitto(tmp_path: Path) -> Iterator[int]:
    """A real mosquitto on a free port of 127.0.0.1 (minimal config, no persistence); skips when absent."""
    if MOSQUITTO is None:
        pytest.skip(MOSQUITTO_MISSING)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=sink)
    try:
        deadline = time.monotonic() + scaled(5)
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mosquitto did not start: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


class Topics:
    """Every message on the broker under ``vision-stream/#`` and ``homeassistant/#``, last one per topic."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.last: dict[str, bytes] = {}
        self.seen: list[tuple[str, bytes]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier=f"test-{os.getpid()}") as client:
            await client.subscribe("vision-stream/#", qos=1)
            await client.subscribe("homeassistant/#", qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                self.last[str(message.topic)] = payload
                self.seen.append((str(message.topic), payload))

    async def __aenter__(self) -> Topics:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), scaled(5))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
