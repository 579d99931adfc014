"""The command line over the REST path: ``emulate`` (both halves), ``snapshot``, ``models``, and a
replay whose live path is refused (issue 4 "Done when"). Real processes, loopback only."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers.paths import SAMPLES
from helpers.rest import API_KEY
from helpers.timing import scaled

from vision_stream.backends.factory import BackendOptions, make_backend, make_rest_backend
from vision_stream.backends.failover import FailoverBackend
from vision_stream.backends.gemini_live import GeminiLiveBackend
from vision_stream.backends.gemini_rest import GeminiRestBackend
from vision_stream.backends.local import LocalBackend
from vision_stream.redact import Secret
from vision_stream.testing.emulator import split_knobs

CLI = [sys.executable, "-m", "vision_stream.cli"]


def test_backend_selection() -> None:
    keyed = BackendOptions(api_key=Secret(API_KEY), rest_url="http://127.0.0.1:9")
    chain = make_backend("auto", keyed)
    assert isinstance(chain, FailoverBackend)
    assert [link.name for link in chain.links] == ["live", "rest", "local"]
    assert isinstance(chain.links[0].backend, GeminiLiveBackend)
    assert chain.links[0].backend.settings.reconnect.max_attempts == 2  # gives up sooner inside the chain
    assert isinstance(make_backend("live", keyed), GeminiLiveBackend)  # explicit live: no failover
    rest = make_backend("rest", keyed)
    assert isinstance(rest, GeminiRestBackend) and rest is make_rest_backend(keyed)  # one limiter per options
    assert chain.links[1].backend is rest
    assert isinstance(make_backend("auto", BackendOptions()), LocalBackend)


def test_emulator_knobs_route_by_prefix() -> None:
    live, rest = split_knobs(["refuse=503 rest.fault=429x3", "rest.retry_delay=2 rest.fault=perday+3"])
    assert live.refuse_status == 503
    assert [(f.kind, f.count, f.after) for f in rest.faults] == [("429", 3, 0), ("perday", 0, 3)]
    assert rest.retry_delay == 2.0


def free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return int(port)
    raise RuntimeError("no free port pair")


@pytest.fixture
async def emulator_process(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    knobs: list[str] = getattr(request, "param", [])
    port = free_port_pair()
    args = [*CLI, "emulate", "--port", str(port)] + [f"--fault={k}" for k in knobs]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), scaled(30))).decode() for _ in range(2)]
        live_url, rest_url = (line.split(" on ", 1)[1].split()[0] for line in lines)
        assert live_url == f"ws://127.0.0.1:{port}" and rest_url == f"http://127.0.0.1:{port + 1}"
        yield live_url, rest_url
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), scaled(10))


async def run_cli(*args: str) -> tuple[int, str, str]:
    env = dict(os.environ, GEMINI_API_KEY=API_KEY)
    env.pop("GOOGLE_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(*CLI, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), scaled(60))
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_snapshot_and_models_through_the_emulator(emulator_process: tuple[str, str]) -> None:
    _, rest_url = emulator_process
    code, out, err = await run_cli("snapshot", str(SAMPLES / "still.jpg"), "--rest-url", rest_url, "--json")
    assert code == 0, err
    response = json.loads(out)
    assert response["backend"] == "rest" and response["model"] == "gemini-flash-latest"
    assert "768x576" in response["text"]
    code, out, err = await run_cli("snapshot", str(SAMPLES / "still.jpg"), "--rest-url", rest_url,
                                   "--snapshot-model", "gemini-3.8-live")
    assert code == 1 and "--snapshot-model" in err and "Live-only" in err
    code, out, err = await run_cli("models", "--rest-url", rest_url)
    assert code == 0, err
    assert "live  gemini-3.8-live  (--model)" in out and "rest  gemini-flash-latest  (--snapshot-model)" in out
    assert API_KEY not in out + err


@pytest.mark.parametrize("emulator_process", [["refuse=503"]], indirect=True)
async def test_replay_with_live_refused_comments_over_rest(emulator_process: tuple[str, str], clip: Path) -> None:
    live_url, rest_url = emulator_process
    code, out, err = await run_cli("replay", str(clip), "--fast", "--commentary-interval", "1", "--json",
                                   "--live-url", live_url, "--rest-url", rest_url, "--rest-rpm", "600")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    changes = [e["backendChanged"] for e in events if "backendChanged" in e]
    assert changes and changes[0]["fromBackend"] == "live" and changes[0]["toBackend"] == "rest"
    assert "503" in changes[0]["reason"]
    rest_turns = [e["commentary"] for e in events
                  if "commentary" in e and e["commentary"].get("backend") == "rest" and e["commentary"].get("final")]
    assert len(rest_turns) >= 2 and all("picture" in c["text"] for c in rest_turns)
    seqs = [int(e["seq"]) for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert API_KEY not in out + err
