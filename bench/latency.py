"""Scenario latency: frame-to-wire against the Live emulator, and event fan-out over gRPC.

*Frame-to-wire*: a paced 1080p session on the Live backend, the emulator in
its own process. For each sampled frame: from ``SampledFrame.decoded_at``
(``time.monotonic()`` when the sampler took the decoded frame) to the return
of the ``ws.send`` that carried its bytes. The bench wraps three seams of the
:class:`~vision_stream.backends.gemini_live.LiveSession` it measures
(``send_frame``, ``protocol.send_video`` and ``frame_latencies.append``, the
last called right after ``ws.send``); nothing else is changed. In-run
baseline: what the cookbook does between having a decoded 1080p frame and
having the message to send (BGR->RGB, Pillow thumbnail, JPEG, base64, JSON).

*Fan-out*: ``vision-stream serve`` in its own process runs one looping
local-backend session (commentary every second). The subscribers run in a
third, fresh process (``python -m bench.latency fanout-client``), not in this
one: this process has just decoded 1080p for the frame-to-wire run, and its
heap and threads must not slow the receiving side. The server and the
subscribers are pinned to separate halves of the cores (``sched_setaffinity``;
one core each on a 2-core machine), as subscribers on other machines would be:
otherwise the measuring client takes the server's core mid-burst. Each run opens 1, 10 or
100 ``Subscribe`` streams (one channel, from the current ``last_seq``: no
backlog replay), lets them settle, then for every event appended inside the
measured window records ``receive time - event.wall_time``: the server stamps
``wall_time`` with ``time.time()`` when the event is appended to the log, the
client reads ``time.time()`` when the message comes out of its stream; both
read the same system clock (CLOCK_REALTIME), so the difference is append ->
receive across processes. The session runs 2 s before any measurement, so
its start-up is not measured. Besides latency the table shows the receiving
process's CPU per message: on a 2-core machine the measuring client competes
with the server for the same cores. Ratio: p99 with 100 subscribers over p99
with one.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, Results, have_pillow, table
from bench.procs import emulator, pinned, server, split_cores

__all__ = ["run_latency"]


def _pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p)) if values else float("nan")


class _WireProbe:
    """Pairs each frame's ``decoded_at`` with the moment its ``ws.send`` returned."""

    def __init__(self, live: Any) -> None:
        self.latencies: list[float] = []
        self._decoded_at: dict[int, float] = {}
        self._current: float | None = None
        send_frame, send_video = live.send_frame, live._protocol.send_video
        probe = self

        async def wrapped_send_frame(frame: Any) -> None:
            probe._decoded_at[id(frame.jpeg)] = frame.decoded_at
            await send_frame(frame)

        def wrapped_send_video(jpeg: bytes) -> Any:
            probe._current = probe._decoded_at.pop(id(jpeg), None)
            return send_video(jpeg)

        class _Latencies(deque):  # type: ignore[type-arg]
            def append(self, value: float) -> None:
                super().append(value)
                if probe._current is not None:
                    probe.latencies.append(time.monotonic() - probe._current)
                    probe._current = None

        live.send_frame = wrapped_send_frame
        live._protocol.send_video = wrapped_send_video
        live.frame_latencies = _Latencies(maxlen=4096)


async def _frame_to_wire(path: Path, url: str, seconds: float) -> list[float]:
    from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveSettings
    from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
    from vision_stream.media.file_source import FileSource
    from vision_stream.pipeline import Session

    backend = GeminiLiveBackend(LiveSettings(base_url=url, api_key="bench-key"))
    probes: list[_WireProbe] = []
    open_live = backend.open

    async def open_probed(settings: SessionSettings) -> Any:
        live = await open_live(settings)
        probes.append(_WireProbe(live))
        return live

    backend.open = open_probed  # type: ignore[method-assign]
    sampling = SamplingPolicy()
    source = FileSource(path, audio=AudioPolicy(), loop=True, sample_interval=1.0 / sampling.fps)
    session = Session(settings=SessionSettings(session_id="latency"), source=source, backend=backend,
                      sampling=sampling, limits=Limits(), paced=True, lossless=False)
    runner = asyncio.create_task(session.run())
    await asyncio.sleep(seconds)
    session.stop("bench done")
    await runner
    return probes[0].latencies if probes else []


def _cookbook_prepare_ms(path: Path, frames: int = 20) -> list[float]:
    """Baseline: the cookbook's work from a decoded BGR frame to the message text."""
    import cv2
    from PIL import Image

    cap = cv2.VideoCapture(str(path))
    out = []
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        start = time.perf_counter()
        image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        image.thumbnail((768, 768))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=80)
        json.dumps({"realtimeInput": {"video": {"mimeType": "image/jpeg",
                                                "data": base64.b64encode(buf.getvalue()).decode()}}})
        out.append((time.perf_counter() - start) * 1000)
        for _ in range(29):  # one frame a second, as sampled
            cap.grab()
    cap.release()
    return out


async def _start_session(address: str, source_name: str) -> str:
    import grpc

    from vision_stream.v1 import vision_stream_pb2 as pb
    from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.VisionStreamStub(channel)
        watch = stub.Watch(pb.WatchRequest(
            source=source_name, loop=True, detach=True,
            config=pb.SessionConfig(backend="local", commentary_interval=1.0),
        ))
        first = await anext(aiter(watch))
        watch.cancel()
        return str(first.session_id)


async def _stop_session(address: str, session_id: str) -> None:
    import grpc

    from vision_stream.v1 import vision_stream_pb2 as pb
    from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        await pb_grpc.VisionStreamStub(channel).StopSession(pb.StopSessionRequest(session_id=session_id))


async def _subscribers(address: str, session_id: str, n: int, t0: float, t1: float) -> dict[str, Any]:
    """``n`` Subscribe streams; latencies (ms) of events stamped in [t0, t1] (``time.time()``)."""
    import resource

    import grpc

    from vision_stream.v1 import vision_stream_pb2 as pb
    from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.VisionStreamStub(channel)
        after = (await stub.ListSessions(pb.ListSessionsRequest()))
        last_seq = next((s.last_seq for s in after.sessions if s.session_id == session_id), 0)

        async def subscriber() -> None:
            call = stub.Subscribe(pb.SubscribeRequest(session_id=session_id, after_seq=last_seq, allow_gap=True))
            async for event in call:
                now = time.time()
                sent = event.wall_time.seconds + event.wall_time.nanos / 1e9
                if t0 <= sent <= t1:
                    latencies.append((now - sent) * 1000)

        tasks = [asyncio.create_task(subscriber()) for _ in range(n)]
        await asyncio.sleep(max(t0 - time.time(), 0))
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = ru.ru_utime + ru.ru_stime
        await asyncio.sleep(max(t1 - time.time(), 0) + 0.5)  # + the last events' delivery
        ru = resource.getrusage(resource.RUSAGE_SELF)
        cpu = ru.ru_utime + ru.ru_stime - cpu0
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"latencies_ms": latencies, "client_cpu_s": cpu}


def _fan_out(address: str, session_id: str, counts: list[int], seconds: float,
             cpus: set[int] | None = None) -> dict[int, dict[str, Any]]:
    """One fresh subscriber process per count (on ``cpus`` only, if given); their results by count."""
    results: dict[int, dict[str, Any]] = {}
    for n in counts:
        t0 = time.time() + 2.0  # streams open and settle before the window
        out = subprocess.run([sys.executable, "-m", "bench.latency", "fanout-client", address, session_id, str(n),
                              repr(t0), repr(t0 + seconds)], capture_output=True, text=True, cwd=REPO, check=True,
                             **pinned(cpus))  # type: ignore[call-overload]
        results[n] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def run_latency(path_1080: Path, path_fanout: Path, seconds: float, results: Results,
                fanout_counts: tuple[int, ...] = (1, 10, 100)) -> None:
    """Both latency measurements; summary lines and a table into ``results``."""
    with emulator() as url:
        wire = asyncio.run(_frame_to_wire(path_1080, url, seconds))
    cookbook = _cookbook_prepare_ms(path_1080) if have_pillow() else []
    wire_ms = [v * 1000 for v in wire]
    results.add("latency_frame_to_wire_1080p_p50_ms", _pct(wire_ms, 50))
    results.add("latency_frame_to_wire_1080p_p99_ms", _pct(wire_ms, 99))
    if cookbook:
        results.add("latency_frame_to_wire_p99_x_vs_cookbook_prepare_p99", _pct(wire_ms, 99) / _pct(cookbook, 99))
    rows: list[list[object]] = [
        ["frame-to-wire 1080p (vision-stream)", len(wire_ms), _pct(wire_ms, 50), _pct(wire_ms, 99),
         max(wire_ms, default=0)],
        ["cookbook prepare 1080p (baseline, no send)", len(cookbook), _pct(cookbook, 50), _pct(cookbook, 99),
         max(cookbook, default=0)],
    ]
    cores = split_cores()  # server and subscribers on separate cores (None: one core, shared)
    with server(path_fanout.parent, cpus=cores[0] if cores else None) as address:
        session_id = asyncio.run(_start_session(address, path_fanout.name))
        time.sleep(2.0)  # past the session's start-up
        fan = _fan_out(address, session_id, list(fanout_counts), seconds, cores[1] if cores else None)
        asyncio.run(_stop_session(address, session_id))
    for n, run in fan.items():
        values = run["latencies_ms"]
        results.add(f"latency_fanout_{n}_subscribers_p50_ms", _pct(values, 50))
        results.add(f"latency_fanout_{n}_subscribers_p99_ms", _pct(values, 99))
        per_msg = run["client_cpu_s"] / len(values) * 1e6 if values else float("nan")
        rows.append([f"event fan-out, {n} subscribers ({len(values) // max(n, 1)} events)", len(values),
                     _pct(values, 50), _pct(values, 99), max(values, default=0), per_msg])
    if fan.get(1, {}).get("latencies_ms") and fan.get(100, {}).get("latencies_ms"):
        results.add("latency_fanout_100_p99_x_vs_1_subscriber",
                    _pct(fan[100]["latencies_ms"], 99) / _pct(fan[1]["latencies_ms"], 99))
    results.section("Latency", table(["measurement", "samples", "p50 ms", "p99 ms", "max ms",
                                      "client CPU us/msg"], [[*r, ""] if len(r) == 5 else r for r in rows])
                    + f"\n\n{seconds:g} s of real-time (paced) media per measurement. Fan-out: append -> "
                    "receive, subscribers in their own process (client CPU: that process, per message); "
                    + (f"server on cores {sorted(cores[0])}, subscribers on cores {sorted(cores[1])} (pinned)."
                       if cores else "server and subscribers share the one core."))


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "fanout-client":
    _, _, _address, _session, _n, _t0, _t1 = sys.argv
    print(json.dumps(asyncio.run(_subscribers(_address, _session, int(_n), float(_t0), float(_t1)))))
