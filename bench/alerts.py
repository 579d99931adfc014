"""Alert latency on the traffic clip (issue 12 closing note): first frame showing the condition -> alert event.

``python -m bench.alerts [--runs N]``: a real server on loopback with the Live and REST
emulators in this process, a paced (real-time) Watch of ``../shared/media/intel_car-detection.mp4``
on the Live backend (commentary every 2 s), the condition "a car enters the left half"; once
without and once with ``verify`` (the REST second opinion, emulator agreeing). The *first frame
showing the condition* is the first sampled frame of the session (GetFrames over the whole
span) on which the offline signals see a vehicle in the left half (the judge the emulators
use, testing/signal_judge.py); latency = the alert event's ``wall_time`` - that frame's
``wall_time`` (when it went to the backend), both stamped by the server from one clock. It
covers the wait for the next prompt (the cadence), the model's turn and, with verify, the
REST round trip (also reported alone: ``verification.latency_seconds``). The emulators answer
at once, so Google's own turn time (seconds) comes on top in production.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path

from vision_stream.backends.factory import BackendOptions
from vision_stream.config import Limits
from vision_stream.redact import Secret
from vision_stream.server.access import SourceAccess
from vision_stream.server.app import start_server
from vision_stream.server.service import ServiceConfig
from vision_stream.testing import EmulatorKnobs, LiveEmulator
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestKnobs
from vision_stream.testing.signal_judge import SignalJudge
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "intel_car-detection.mp4"
KEY = "AIzaBENCH-alerts-0123456789"
TEXT = "a car enters the left half"


async def one_run(root: Path, verify: bool) -> tuple[float, float, float]:
    """(latency s, media time of the first frame showing it, verification latency s)."""
    import grpc

    async with LiveEmulator(EmulatorKnobs(api_keys=(KEY,))) as live, \
            RestEmulator(RestKnobs(api_keys=(KEY,), verify="agree")) as rest:
        options = BackendOptions(api_key=Secret(KEY), live_url=live.url, rest_url=rest.url,
                                 rest_requests_per_minute=600)
        config = ServiceConfig(access=SourceAccess(media_root=root), limits=Limits(max_sessions=2), backends=options)
        running = await start_server(config, host="127.0.0.1", port=0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stub = pb_grpc.VisionStreamStub(channel)
                condition = pb.WatchCondition(id="car", text=TEXT, cooldown_seconds=300, min_confidence=0.3,
                                              verify=verify)
                cfg = pb.SessionConfig(backend="live", commentary_interval=2, conditions=[condition])
                alert = None
                session_id = ""
                async for event in stub.Watch(pb.WatchRequest(source="traffic.mp4", config=cfg)):
                    session_id = event.session_id
                    if event.HasField("alert") and not event.alert.builtin:
                        alert = event
                        break
                assert alert is not None, "no alert"
                frames = (await stub.GetFrames(pb.GetFramesRequest(session_id=session_id, from_media_time=0,
                                                                   to_media_time=alert.media_time + 5))).frames
                judge = SignalJudge()  # in order: the analyzer needs the frames before (motion history)
                first = next((f for f in frames if _shows(judge, f.jpeg)), None)
                assert first is not None, f"no frame of {len(frames)} shows it; alert at {alert.media_time:.1f} s"
                latency = alert.wall_time.ToNanoseconds() / 1e9 - first.wall_time.ToNanoseconds() / 1e9
                await stub.StopSession(pb.StopSessionRequest(session_id=session_id))
                return latency, first.media_time, alert.alert.verification.latency_seconds
        finally:
            await running.stop()


def _shows(judge: SignalJudge, jpeg: bytes) -> bool:
    verdict = judge.judge([jpeg], {"car": TEXT}).get("car")
    return verdict is not None and verdict.met and verdict.confidence >= 0.3


async def main(runs: int) -> None:
    if not CLIP.exists():
        raise SystemExit(f"{CLIP} absent")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(CLIP, root / "traffic.mp4")
        print("| verify | run | first frame showing it (media s) | alert latency (s) | of which verification (s) |")
        print("| --- | --- | --- | --- | --- |")
        for verify in (False, True):
            for run in range(runs):
                latency, at, checked = await one_run(root, verify)
                print(f"| {'yes' if verify else 'no'} | {run + 1} | {at:.1f} | {latency:.2f} | {checked:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
