"""End to end, as an operator would: ``vision-stream serve`` (a subprocess, no store flags:
SQLite under the default data dir) with a configured camera looping samples/sample.mp4,
restarted mid-stream (SIGTERM). A subscriber resumes with after_seq + run_id and gets
every event exactly once across the restart. Then the server is killed (-9): its run did
not end cleanly, so the camera starts a new run, and the old run's position is refused
naming both runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from helpers.paths import SAMPLES
from helpers.timing import scaled

from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

CLI = [sys.executable, "-m", "vision_stream.cli"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``serve`` on a fixed port with a cameras file and a private XDG_DATA_HOME."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.config = tmp / "cameras.toml"
        self.config.write_text(f'[cameras.lobby]\nsource = "{SAMPLES / "sample.mp4"}"\nloop = true\n'
                               'backend = "local"\ncommentary_interval = 1.0\n')
        self.env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
        self.env["XDG_DATA_HOME"] = str(tmp / "xdg")
        self.proc: subprocess.Popen[str] | None = None

    def _spawn(self) -> subprocess.Popen[str]:
        return subprocess.Popen([*CLI, "serve", "--port", str(self.port), "--config", str(self.config),
                                 "--grace", "5", "--http-port", "0"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=self.env)

    async def start(self) -> None:
        self.proc = self._spawn()
        out = self.proc.stdout
        assert out is not None
        for _ in range(10):
            line = await asyncio.wait_for(asyncio.to_thread(out.readline), scaled(20.0))
            if "serving" in line:
                return
        raise AssertionError("serve did not say it was serving")

    async def stop(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        await asyncio.wait_for(asyncio.to_thread(self.proc.wait), scaled(15.0))
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()


async def _subscribe(port: int, request: pb.SubscribeRequest, *, until_seq: int = 0,
                     until_restart: bool = False) -> list[pb.Event]:
    """Events until seq >= until_seq, or (until_restart) until this process's session_started
    and one event after it; the stream ending early (the server stopping) ends it too."""
    got: list[pb.Event] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = pb_grpc.VisionStreamStub(channel).Subscribe(request, timeout=scaled(30.0))
        started = False
        try:
            async for event in call:
                got.append(event)
                if (until_seq and event.seq >= until_seq) or (until_restart and started):
                    break
                started = started or (event.HasField("session_started") and event.seq > 1)
        finally:
            call.cancel()
    return got


@pytest.mark.slow
async def test_serve_restarted_mid_stream_resumes_exactly_once(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        await server.start()
        first = await _subscribe(server.port, pb.SubscribeRequest(session_id="lobby"), until_seq=6)
        run = first[0].run_id
        await server.stop(signal.SIGTERM)  # mid-stream: the camera is looping

        await server.start()
        resumed = await _subscribe(server.port, pb.SubscribeRequest(session_id="lobby", after_seq=first[-1].seq,
                                                                    run_id=run), until_restart=True)
        seqs = [e.seq for e in first + resumed]
        assert seqs == list(range(1, len(seqs) + 1))  # every event exactly once, no gap
        assert {e.run_id for e in first + resumed} == {run}
        kinds = [e.WhichOneof("payload") for e in first + resumed]
        assert kinds.count("session_started") == 2 and "session_ended" in kinds  # shutdown, then the restart

        server.kill()  # -9: the run does not end cleanly
        await server.start()
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await _subscribe(server.port, pb.SubscribeRequest(session_id="lobby", after_seq=seqs[-1], run_id=run),
                             until_seq=seqs[-1] + 1)
        assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = stale.value.details() or ""
        fresh = await _subscribe(server.port, pb.SubscribeRequest(session_id="lobby"), until_seq=1)
        assert fresh[0].run_id != run and run in details and fresh[0].run_id in details
        await server.stop(signal.SIGTERM)
    finally:
        server.kill()
