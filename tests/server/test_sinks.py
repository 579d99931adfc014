"""Sinks end to end: a real server, a configured camera of the sample clip, a local webhook
receiver on loopback, a real mosquitto started by the test (subscribed to with aiomqtt)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from helpers.server import Served, serving
from helpers.sinks import SECRET, Receiver, Topics, needs_mosquitto, running_mosquitto
from helpers.timing import scaled, until

from vision_stream.config import Limits
from vision_stream.errors import CameraConfigError
from vision_stream.metrics import SINK_EVENTS
from vision_stream.server.access import SourceAccess
from vision_stream.server.cameras import parse_cameras
from vision_stream.server.service import ServiceConfig
from vision_stream.sinks.config import load_sinks
from vision_stream.sinks.webhook import verify
from vision_stream.v1 import vision_stream_pb2 as pb


def camera_toml(sinks: str, *, name: str = "yard") -> str:
    """A looping camera of the sample clip on the offline backend, with ``sinks`` (TOML) of its own."""
    return (f'[cameras.{name}]\nsource = "sample.mp4"\nloop = true\nbackend = "local"\n'
            f'commentary_interval = 1.0\n{sinks}')


def cameras_from(media_root: Path, text: str, env: dict[str, str] | None = None):
    return parse_cameras(text, origin=media_root / "cameras.toml", env=env or {})


@contextlib.asynccontextmanager
async def served_with(media_root: Path, **options: object) -> AsyncIterator[Served]:
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))
    async with serving(config, media_root, **options) as served:
        yield served


# ---------------------------------------------------------------------------------- webhook


async def test_webhook_gets_a_cameras_detection_signed(media_root: Path) -> None:
    async with Receiver() as receiver:
        sinks = (f'[[cameras.yard.sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{receiver.url}"\n'
                 'secret_env = "HOOK_SECRET"\nevents = ["detection", "commentary"]\n')
        cameras = cameras_from(media_root, camera_toml(sinks), {"HOOK_SECRET": SECRET})
        async with served_with(media_root, cameras=cameras):
            def kinds() -> set[str]:
                return {k for b in receiver.bodies for k in b if k in ("detection", "commentary")}

            await until(lambda: {"detection", "commentary"} <= kinds(), within=15, what="a detection and commentary",
                        detail=lambda: [list(b) for b in receiver.bodies[-5:]])
        assert receiver.bad_signatures == 0
        detection = next(b for b in receiver.bodies if "detection" in b)
        assert detection["sessionId"] == "yard" and detection["detection"]["label"]
        # Only what the filter asked for: no stats, no session_started.
        assert all(("detection" in b) or ("commentary" in b) for b in receiver.bodies)


def test_signature_refuses_tampering_and_old_timestamps() -> None:
    from vision_stream.sinks.webhook import sign

    now = str(int(time.time()))
    good = sign(SECRET, now, b'{"a":1}')
    assert verify(SECRET, now, b'{"a":1}', good)
    assert not verify(SECRET, now, b'{"a":2}', good)
    assert not verify("other", now, b'{"a":1}', good)
    old = str(int(time.time()) - 3600)
    assert not verify(SECRET, old, b'{"a":1}', sign(SECRET, old, b'{"a":1}'))


def dropped(sink: str) -> float:
    return SINK_EVENTS.labels(sink=sink, outcome="dropped")._value.get()


async def lags_of_a_subscriber(served: Served, session_id: str, seconds: float) -> list[float]:
    """Append -> receive delays (s) of every event a gRPC subscriber gets for ``seconds``."""
    lags: list[float] = []
    sub = served.stub.Subscribe(pb.SubscribeRequest(session_id=session_id))
    deadline = time.monotonic() + seconds
    async for event in sub:
        lags.append(time.time() - event.wall_time.ToNanoseconds() / 1e9)
        if time.monotonic() > deadline:
            break
    sub.cancel()
    return lags


async def test_dead_webhook_targets_never_slow_the_session(media_root: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    async with Receiver(hang=True) as hanging:
        sinks = "".join(
            f'[[cameras.yard.sinks]]\ntype = "webhook"\nname = "{name}"\nurl = "{url}"\nsecret = "{SECRET}"\n'
            'events = ["commentary", "detection", "stats", "transcript", "error"]\nqueue = 2\ntimeout = 30.0\n'
            '[cameras.yard.sinks.retry]\ninitial_delay = 5.0\nmax_delay = 5.0\n'
            for name, url in (("closed", f"http://127.0.0.1:{dead_port}/hook"), ("hanging", hanging.url)))
        cameras = cameras_from(media_root, camera_toml(sinks))
        before = {name: dropped(name) for name in ("closed", "hanging")}
        async with served_with(media_root, cameras=cameras) as served:
            lags = await lags_of_a_subscriber(served, "yard", scaled(3.0))
            hub = served.running.sinks
            assert hub is not None
            stuck = {sink.name: sink for sink in hub.sinks}
            # The session went on at its pace: the subscriber got events promptly, many of them.
            stats = (await served.stub.ListSessions(pb.ListSessionsRequest())).sessions[0].stats
            assert stats.frames_in > 40, stats  # ~3 s of a 30 fps clip, paced
            assert len(lags) >= 5 and max(lags) < scaled(0.5), sorted(lags)[-5:]
            # ... while both sinks hold at most their queue and count what they dropped.
            for name, sink in stuck.items():
                assert sink.pending <= 2 and sink.delivered == 0
                assert sink.dropped > 0 and dropped(name) - before[name] == sink.dropped


# ------------------------------------------------------------------------------------- MQTT


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    """A real mosquitto on a free port of 127.0.0.1 (helpers.sinks)."""
    with running_mosquitto(tmp_path) as port:
        yield port


def mqtt_sink(port: int) -> str:
    return (f'[[cameras.yard.sinks]]\ntype = "mqtt"\nname = "broker"\nhost = "127.0.0.1"\nport = {port}\n'
            'events = ["commentary", "detection", "session_ended"]\n'
            '[cameras.yard.sinks.retry]\ninitial_delay = 0.2\nmax_delay = 1.0\n')


@needs_mosquitto
async def test_mqtt_topics_discovery_and_availability(media_root: Path, mosquitto: int) -> None:
    availability = "vision-stream/vision_stream/availability"
    async with Topics(mosquitto) as topics:
        cameras = cameras_from(media_root, camera_toml(mqtt_sink(mosquitto)))
        async with served_with(media_root, cameras=cameras):
            await until(lambda: "vision-stream/yard/commentary" in topics.last
                        and "vision-stream/yard/detection" in topics.last, within=15,
                        what="commentary and a detection on the camera's topics", detail=lambda: sorted(topics.last))
            assert topics.last[availability] == b"online"
            sensor = json.loads(topics.last["homeassistant/sensor/vision_stream/yard_commentary/config"])
            assert sensor["state_topic"] == "vision-stream/yard/commentary"
            assert sensor["availability_topic"] == availability
            commentary = json.loads(topics.last["vision-stream/yard/commentary"])
            assert commentary["sessionId"] == "yard" and commentary["commentary"]["text"]
            detection = json.loads(topics.last["vision-stream/yard/detection"])
            label = detection["detection"]["label"]
            binary = json.loads(topics.last[f"homeassistant/binary_sensor/vision_stream/yard_{label}/config"])
            assert binary["state_topic"] == f"vision-stream/yard/detection/{label}"
            # Discovery went out before the label's first state.
            order = [topic for topic, _ in topics.seen]
            assert order.index(f"homeassistant/binary_sensor/vision_stream/yard_{label}/config") < order.index(
                f"vision-stream/yard/detection/{label}")
            assert topics.last[f"vision-stream/yard/detection/{label}"] == b"ON"
        # A clean stop says offline itself (the broker drops the will on DISCONNECT).
        await until(lambda: topics.last.get(availability) == b"offline", within=5, what="offline on stop")


@needs_mosquitto
async def test_mqtt_last_will_when_the_server_dies(media_root: Path, mosquitto: int, tmp_path: Path) -> None:
    availability = "vision-stream/vision_stream/availability"
    config = tmp_path / "cameras.toml"
    shutil.copy(media_root / "sample.mp4", tmp_path / "sample.mp4")
    config.write_text(camera_toml(mqtt_sink(mosquitto)))
    cli = Path(sys.executable).with_name("vision-stream")
    command = [str(cli), "serve", "--http-port", "0", "--port", "0", "--config", str(config)]
    helper = await asyncio.create_subprocess_exec(str(cli), "serve", "--help", stdout=subprocess.PIPE)
    help_text, _ = await asyncio.wait_for(helper.communicate(), scaled(30))
    if b"--http-port" in help_text:
        command += ["--http-port", "0"]  # not 8080: another test may hold it
    async with Topics(mosquitto) as topics:
        proc = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await until(lambda: topics.last.get(availability) == b"online", within=20,
                        what="online from the server")
            proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
            await asyncio.wait_for(proc.wait(), scaled(5))
            await until(lambda: topics.last.get(availability) == b"offline", within=5, what="the last will")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def test_sink_config_errors_name_the_key(media_root: Path, tmp_path: Path) -> None:
    with pytest.raises(CameraConfigError, match=r"cameras\.yard\.sinks\[0\]\.url"):
        cameras_from(media_root, camera_toml('[[cameras.yard.sinks]]\ntype = "webhook"\nurl = "ftp://x"\n'
                                             'secret = "s"\n'))
    with pytest.raises(CameraConfigError, match="HOOK_SECRET") as caught:
        cameras_from(media_root, camera_toml('[[cameras.yard.sinks]]\ntype = "webhook"\nurl = "http://x/"\n'
                                             'secret_env = "HOOK_SECRET"\n'))
    with pytest.raises(CameraConfigError, match=r"sinks\[0\]\.min_severity"):
        cameras_from(media_root, '[[sinks]]\ntype = "mqtt"\nhost = "h"\nmin_severity = "huge"\n' + camera_toml(""))
    path = tmp_path / "cameras.toml"
    path.write_text('[[sinks]]\ntype = "webhook"\nurl = "http://127.0.0.1:1/h"\nsecret = "top-secret"\n'
                    'cameras = ["yard"]\n' + camera_toml(""))
    (sink,) = load_sinks(path, env={})
    assert sink.follows("yard") and not sink.follows("other") and "top-secret" not in repr(sink)
    assert "top-secret" not in str(caught.value)
