"""Alerts go wherever events go, and a second opinion never holds the session's other events.

* the engine's verification bounds (no I/O): at most VERIFY_IN_FLIGHT checks at once,
  VERIFY_WAITING more queued, beyond that the alert fires unverified; a RESOLVED waits
  for its FIRED's check and is dropped when the check rejects it;
* a Live Watch on the traffic clip with a slow REST second opinion (emulator ``latency``):
  commentary keeps arriving while the check is pending, the alert comes after it, stamped
  with the candidate's media time and frame ids;
* a configured camera (sample clip, offline judge, conditions from the cameras TOML): its
  alerts reach a gRPC Subscribe, the HTTP SSE stream (``event: alert``), a webhook sink
  filtered to alerts of severity >= medium, and the MQTT topic ``vision-stream/<camera>/alert``
  of a real mosquitto (skipped when absent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from helpers.clips import trimmed
from helpers.http import SseEvent, base_url, sse_events
from helpers.server import Served, serve, serving
from helpers.sinks import Receiver, Topics, running_mosquitto
from helpers.timing import scaled, until

from vision_stream.backends.factory import BackendOptions
from vision_stream.cli.args import backend_options_from
from vision_stream.cli.parser import build_parser
from vision_stream.conditions.engine import VERIFY_IN_FLIGHT, VERIFY_WAITING, ConditionEngine
from vision_stream.conditions.model import Condition
from vision_stream.config import Limits
from vision_stream.events import Alert, ConditionVerdict, Verification
from vision_stream.redact import Secret
from vision_stream.server.access import SourceAccess
from vision_stream.server.cameras import parse_cameras
from vision_stream.server.service import ServiceConfig
from vision_stream.testing import EmulatorKnobs, LiveEmulator
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestKnobs
from vision_stream.v1 import vision_stream_pb2 as pb

KEY = "AIzaTEST-alert-delivery-key-0123456789"
CAR_TEXT = "a car enters the left half"
SLOW_CHECK = 3.0  # seconds the REST emulator waits before answering a second opinion
VERIFY_MODEL = "gemini-2.5-pro"


# ---- the engine's bounds (no I/O) ------------------------------------------------------------------


class _Held:
    """A verifier whose answers wait for ``release``; ``confirm`` decides them."""

    def __init__(self, confirm: bool) -> None:
        self.release = asyncio.Event()
        self.confirm = confirm
        self.running = 0
        self.most = 0

    async def verify(self, condition: Condition, verdict: ConditionVerdict,
                     frame_ids: tuple[int, ...]) -> Verification:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1
        return Verification(requested=True, confirmed=self.confirm, backend="rest", evidence="checked")


def _verdict(cid: str, met: bool) -> ConditionVerdict:
    return ConditionVerdict(cid, met, 0.9, "seen" if met else "gone", "live", (7,))


def test_checks_are_bounded_and_a_candidate_beyond_fires_unverified() -> None:
    count = VERIFY_IN_FLIGHT + VERIFY_WAITING + 1
    engine = ConditionEngine([Condition(id=f"c{i}", text="a person", verify=True) for i in range(count)])
    verifier = _Held(confirm=True)
    engine.verifier = verifier
    delivered: list[tuple[Alert, float | None]] = []
    engine.deliver = lambda alerts, media_time: delivered.extend((a, media_time) for a in alerts)

    async def run() -> list[Alert]:
        now = []
        for i in range(count):
            now += engine.verdict(_verdict(f"c{i}", True), float(i), wall=0.0)
        await asyncio.sleep(0.05)
        assert verifier.most == VERIFY_IN_FLIGHT and engine.pending == count - 1
        verifier.release.set()
        await engine.settle(2.0)
        return now

    now = asyncio.run(run())
    assert [a.condition_id for a in now] == [f"c{count - 1}"], "the one beyond the bound fires at once"
    assert not now[0].verification.confirmed and "pending" in now[0].verification.evidence
    assert [(a.condition_id, t) for a, t in delivered] == [(f"c{i}", float(i)) for i in range(count - 1)]
    assert all(a.verification.confirmed and a.frame_ids == (7,) for a, _ in delivered)
    assert engine.pending == 0


@pytest.mark.parametrize("confirm", [True, False])
def test_a_resolved_waits_for_its_fired_check(confirm: bool) -> None:
    engine = ConditionEngine([Condition(id="door", text="a person", verify=True, notify_resolved=True)])
    verifier = _Held(confirm=confirm)
    engine.verifier = verifier
    delivered: list[str] = []
    engine.deliver = lambda alerts, _t: delivered.extend(a.state for a in alerts)

    async def run() -> list[Alert]:
        now = engine.verdict(_verdict("door", True), 1.0, wall=0.0)
        now += engine.verdict(_verdict("door", False), 2.0, wall=0.0)  # gone before the check answers
        await asyncio.sleep(0.02)
        assert delivered == []
        verifier.release.set()
        await engine.settle(2.0)
        return now

    assert asyncio.run(run()) == []
    assert delivered == (["fired", "resolved"] if confirm else [])
    assert engine.rejected == (0 if confirm else 1)


# ---- the second opinion's model: CLI flag and cameras TOML -----------------------------------------


def test_verify_model_from_the_cli_and_the_cameras_file(tmp_path: Path) -> None:
    parser = build_parser()
    for argv in (["replay", "clip.mp4", "--verify-model", VERIFY_MODEL], ["serve", "--verify-model", VERIFY_MODEL]):
        assert backend_options_from(parser.parse_args(argv), {}).verify_model == VERIFY_MODEL
    assert backend_options_from(parser.parse_args(["replay", "clip.mp4"]), {}).verify_model == ""
    text = ('[defaults]\nverify_model = "gemini-x"\n[cameras.a]\nsource = "rtsp://127.0.0.1/a"\n'
            f'[cameras.b]\nsource = "rtsp://127.0.0.1/b"\nverify_model = "{VERIFY_MODEL}"\n')
    a, b = parse_cameras(text, origin=tmp_path / "cameras.toml", env={})
    server = BackendOptions(verify_model="from-serve")
    assert (a.backend_options(server).verify_model, b.backend_options(server).verify_model) == (
        "gemini-x", VERIFY_MODEL)
    plain, = parse_cameras('[cameras.c]\nsource = "rtsp://127.0.0.1/c"\n', origin=tmp_path / "cameras.toml", env={})
    assert plain.backend_options(server) is server


# ---- a slow second opinion beside a Live session ---------------------------------------------------


@pytest.fixture
def traffic(shared_media: Path, tmp_path: Path) -> Path:
    source = shared_media / "intel_car-detection.mp4"
    if not source.exists():
        pytest.skip(f"{source} absent")
    root = tmp_path / "media"
    root.mkdir()
    trimmed(source, root / "traffic10.mp4", 10.0)
    return root


def _wall(event: pb.Event) -> float:
    return event.wall_time.seconds + event.wall_time.nanos / 1e9


@pytest.mark.slow
async def test_commentary_flows_while_a_second_opinion_is_pending(traffic: Path) -> None:
    async with LiveEmulator(EmulatorKnobs(api_keys=(KEY,))) as live, \
            RestEmulator(RestKnobs(api_keys=(KEY,), verify="agree", latency=SLOW_CHECK)) as rest:
        options = BackendOptions(api_key=Secret(KEY), live_url=live.url, rest_url=rest.url,
                                 rest_requests_per_minute=600, verify_model=VERIFY_MODEL)
        config = ServiceConfig(access=SourceAccess(media_root=traffic), limits=Limits(max_sessions=2),
                               backends=options)
        async for served in serve(config, traffic):
            condition = pb.WatchCondition(id="car", text=CAR_TEXT, cooldown_seconds=60, min_confidence=0.3,
                                          verify=True)
            request = pb.WatchRequest(source="traffic10.mp4", config=pb.SessionConfig(
                backend="live", commentary_interval=1, conditions=[condition]))
            events = [e async for e in served.stub.Watch(request, timeout=scaled(90))]
    alerts = [e for e in events if e.HasField("alert") and not e.alert.builtin]
    assert len(alerts) == 1, [e.WhichOneof("payload") for e in events]
    alert = alerts[0]
    check = alert.alert.verification
    assert check.confirmed and check.backend == "rest" and check.latency_seconds >= SLOW_CHECK - 0.1
    started = _wall(alert) - check.latency_seconds  # when the candidate went to the second opinion
    meanwhile = [e for e in events if e.seq < alert.seq and _wall(e) > started + 0.2
                 and (e.HasField("commentary") or e.HasField("stats"))]
    assert any(e.HasField("commentary") for e in meanwhile), \
        "commentary kept arriving while the check was pending"
    # The alert is stamped with the candidate's media time (before the commentary logged meanwhile).
    assert alert.media_time < max(e.media_time for e in meanwhile)
    assert alert.alert.frame_ids and alert.alert.backend == "live"
    assert check.model == VERIFY_MODEL and [r.model for r in rest.generate_requests()] == [VERIFY_MODEL]


# ---- a configured camera's alerts: gRPC, SSE, webhook, MQTT -----------------------------------------


def camera_toml(sinks: str) -> str:
    """The sample clip looped on the offline backend, with a high and a low severity condition."""
    return ('[cameras.yard]\nsource = "sample.mp4"\nloop = true\nbackend = "local"\ncommentary_interval = 2.0\n'
            '[[cameras.yard.conditions]]\nid = "moving"\ntext = "motion"\ncooldown = 1.0\nseverity = "high"\n'
            '[[cameras.yard.conditions]]\nid = "centre"\ntext = "motion in the centre"\ncooldown = 1.0\n'
            'severity = "low"\n' + sinks)


@contextlib.asynccontextmanager
async def camera_served(media_root: Path, sinks: str) -> AsyncIterator[Served]:
    cameras = parse_cameras(camera_toml(sinks), origin=media_root / "cameras.toml", env={"HOOK_SECRET":
                                                                                         "webhook-test-secret"})
    config = ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=4))
    async with serving(config, media_root, cameras=cameras, http_port=0) as served:
        yield served


async def subscribed_alerts(served: Served, want: set[str]) -> list[pb.Event]:
    """Alerts of the camera over gRPC Subscribe until every condition in ``want`` fired."""
    out: list[pb.Event] = []
    call = served.stub.Subscribe(pb.SubscribeRequest(session_id="yard"), timeout=scaled(30))
    async for event in call:
        if event.HasField("alert") and not event.alert.builtin:
            out.append(event)
            if want <= {e.alert.condition_id for e in out}:
                call.cancel()
                break
    return out


async def sse_alerts(served: Served, want: set[str]) -> list[SseEvent]:
    out: list[SseEvent] = []
    async with httpx.AsyncClient(timeout=scaled(30)) as client, \
            client.stream("GET", f"{base_url(served)}/v1/sessions/yard/events") as response:
        assert response.status_code == 200
        async for item in sse_events(response):
            if isinstance(item, SseEvent) and item.event == "alert":
                out.append(item)
                if want <= {e.json()["alert"]["conditionId"] for e in out}:
                    break
    return out


async def test_a_cameras_alerts_reach_subscribe_sse_and_a_filtered_webhook(media_root: Path) -> None:
    async with Receiver() as receiver:
        sinks = (f'[[cameras.yard.sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{receiver.url}"\n'
                 'secret_env = "HOOK_SECRET"\nevents = ["alert"]\nmin_severity = "medium"\n')
        async with camera_served(media_root, sinks) as served:
            both = {"moving", "centre"}
            grpc_alerts = await asyncio.wait_for(subscribed_alerts(served, both), scaled(30))
            by_id = {e.alert.condition_id: e.alert for e in grpc_alerts}
            assert by_id["moving"].severity == "high" and by_id["moving"].frame_ids
            assert by_id["moving"].backend == "local" and by_id["moving"].state == pb.Alert.STATE_FIRED
            sse = await asyncio.wait_for(sse_alerts(served, both), scaled(30))
            body = sse[0].json()
            assert body["sessionId"] == "yard" and body["alert"]["frameIds"], body
            await until(lambda: any(b.get("alert") for b in receiver.bodies), within=15,
                        what="an alert at the webhook", detail=lambda: receiver.bodies[-3:])
    hooked = [b["alert"] for b in receiver.bodies]
    assert hooked and {a["conditionId"] for a in hooked} == {"moving"}, "the low-severity one is filtered out"
    assert receiver.bad_signatures == 0


async def test_a_cameras_alerts_on_their_mqtt_topic(media_root: Path, tmp_path: Path) -> None:
    with running_mosquitto(tmp_path) as port:
        sinks = (f'[[cameras.yard.sinks]]\ntype = "mqtt"\nname = "broker"\nhost = "127.0.0.1"\nport = {port}\n'
                 'events = ["alert"]\n[cameras.yard.sinks.retry]\ninitial_delay = 0.2\nmax_delay = 1.0\n')
        async with Topics(port) as topics, camera_served(media_root, sinks):
            topic = "vision-stream/yard/alert"
            await until(lambda: topic in topics.last, within=15, what="an alert on its topic",
                        detail=lambda: sorted(topics.last))
            alert = json.loads(topics.last[topic])
            assert alert["sessionId"] == "yard" and alert["alert"]["conditionId"] in ("moving", "centre")
            assert not any(t.endswith("/commentary") for t, _ in topics.seen), "filtered to alerts"
