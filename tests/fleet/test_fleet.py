"""A fleet on loopback (issue 13 item 3): a real nats-server with JetStream and three
``vision-stream serve`` replicas (subprocesses) sharing a cameras file of three
cameras looping samples/sample.mp4 on the offline analyzer; leases TTL 3 s.

The seq rule across a takeover (fleet/follow.py, store/resume.py ``fork_covers``):
a killed owner's camera continues on another replica after its last *stored*
event, under a new run_id forked from the old run; a subscriber reading the store
on a third replica goes on gap-free and duplicate-free, the events after the fork
carrying the new run_id; a position of the old run past the fork point (events
the dead owner showed but never stored) is FAILED_PRECONDITION naming both runs.
A drained owner (SIGTERM) ends the run cleanly: the next owner continues the
same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from helpers.timing import scaled

from vision_stream.errors import UsageError
from vision_stream.fleet import FleetOptions, share_of
from vision_stream.store.resume import fork_covers
from vision_stream.testing.fleet_cluster import INSTALL, Cluster, nats_server_binary
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

CAMERAS = ["cam-a", "cam-b", "cam-c"]
TTL = 3.0


def test_share_and_options() -> None:
    assert [share_of(3, n) for n in (0, 1, 2, 3, 4)] == [3, 3, 2, 1, 1]
    with pytest.raises(UsageError, match="--lease-ttl"):
        FleetOptions(url="nats://127.0.0.1:4222", ttl=0.5)
    with pytest.raises(UsageError, match="--replica-id"):
        FleetOptions(url="nats://127.0.0.1:4222", replica_id="a.b")


def test_fork_rule() -> None:
    fork = "runA:95:runB"
    assert fork_covers(fork, "runA", 95, "runB") and fork_covers(fork, "runA", 0, "runB")
    assert not fork_covers(fork, "runA", 96, "runB")  # past the stored part: a stale run's position
    assert not fork_covers(fork, "runA", 10, "runC")  # the fork of another run
    assert not fork_covers(None, "runA", 10, "runB")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if nats_server_binary() is None:
        pytest.skip(f"nats-server is not installed: {INSTALL}")
    c = Cluster(tmp_path, CAMERAS, replicas=3, ttl=TTL)
    try:
        c.start(within=scaled(30.0))
        yield c
    finally:
        c.close()


class Follower:
    """Subscribe on one replica in the background, keeping every event."""

    def __init__(self, target: str, request: pb.SubscribeRequest) -> None:
        self.events: list[pb.Event] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._task = asyncio.create_task(self._run(target, request))

    async def _run(self, target: str, request: pb.SubscribeRequest) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                async for event in pb_grpc.VisionStreamStub(channel).Subscribe(request):
                    self.events.append(event)
            except grpc.aio.AioRpcError as exc:
                self.error = exc

    async def until(self, predicate: object, within: float, what: str) -> float:
        deadline = time.monotonic() + scaled(within)
        while time.monotonic() < deadline:
            if callable(predicate) and predicate(self.events):
                return time.monotonic()
            if self._task.done():
                raise AssertionError(f"{what}: the subscription ended ({self.error})")
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what}: not within {within} s; last {[(e.seq, e.run_id) for e in self.events[-5:]]}")

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def following(target: str, request: pb.SubscribeRequest) -> AsyncIterator[Follower]:
    follower = Follower(target, request)
    try:
        yield follower
    finally:
        await follower.close()


def gap_free(events: list[pb.Event]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # no gap, no duplicate


async def stub_call(target: str, method: str, request: object) -> object:
    async with grpc.aio.insecure_channel(target) as channel:
        return await getattr(pb_grpc.VisionStreamStub(channel), method)(request, timeout=scaled(15.0))


@pytest.mark.slow
async def test_kill_owner_camera_resumes_elsewhere_and_a_third_replica_sees_no_gap(cluster: Cluster) -> None:
    owners = await cluster.balanced(scaled(20.0))
    assert sorted(owners) == CAMERAS and sorted(owners.values()) == ["r0", "r1", "r2"]  # one camera each
    victim = cluster.replica(owners["cam-a"])
    third = next(r for r in cluster.replicas if r is not victim)
    async with following(third.target, pb.SubscribeRequest(session_id="cam-a")) as sub:
        await sub.until(lambda ev: len(ev) >= 4, 15.0, "events before the kill")
        old_run = sub.events[0].run_id
        killed = time.monotonic()
        victim.kill()
        resumed = await sub.until(lambda ev: any(e.run_id != old_run for e in ev), TTL + 12.0, "the takeover")
        await sub.until(lambda ev: sum(e.run_id != old_run for e in ev) >= 3, 10.0, "events after the takeover")
        events = list(sub.events)
    takeover = resumed - killed
    assert takeover < TTL + 8.0, takeover  # TTL + one tick + the camera's start, with room for a slow CI
    new_owner = (await cluster.owners())["cam-a"]
    assert new_owner != victim.id
    gap_free(events)
    assert events[0].seq == 1
    runs = [e.run_id for e in events]
    fork = runs.index(next(r for r in runs if r != old_run))
    assert set(runs[:fork]) == {old_run} and len(set(runs[fork:])) == 1  # one switch, at the fork point
    new_run, fork_seq = runs[fork], events[fork - 1].seq
    assert events[fork].HasField("session_started")  # the new owner announces the camera's restart

    # The exact rule for a client resuming the old run elsewhere: at or below the fork: goes on.
    target = cluster.replica(new_owner).target
    got = await _first(target, pb.SubscribeRequest(session_id="cam-a", run_id=old_run, after_seq=fork_seq))
    assert (got.seq, got.run_id) == (fork_seq + 1, new_run)
    with pytest.raises(grpc.aio.AioRpcError) as stale:  # past it: the dead owner's unstored events
        await _first(third.target, pb.SubscribeRequest(session_id="cam-a", run_id=old_run, after_seq=fork_seq + 1))
    assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert old_run in (stale.value.details() or "") and new_run in (stale.value.details() or "")
    print(f"takeover after kill -9: {takeover:.2f} s (lease TTL {TTL} s)")


async def _first(target: str, request: pb.SubscribeRequest) -> pb.Event:
    async with grpc.aio.insecure_channel(target) as channel:
        call = pb_grpc.VisionStreamStub(channel).Subscribe(request, timeout=scaled(15.0))
        async for event in call:
            call.cancel()
            return event
    raise AssertionError("no event")


@pytest.mark.slow
async def test_stop_via_non_owner_drain_hands_over_and_nats_restart_is_survived(cluster: Cluster) -> None:
    owners = await cluster.balanced(scaled(20.0))
    stop_owner = cluster.replica(owners["cam-a"])
    asker = next(r for r in cluster.replicas if r is not stop_owner)
    # The HTTP side of a replica that does not run cam-a: listed running, its SSE from the store.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{asker.http_port}", timeout=scaled(15.0)) as http:
        listed = (await http.get("/v1/sessions")).json()["sessions"]
        assert {s["sessionId"]: s["state"] for s in listed} == dict.fromkeys(CAMERAS, "running")
        ids = []
        async with http.stream("GET", "/v1/sessions/cam-a/events") as sse:
            async for line in sse.aiter_lines():
                if line.startswith("id: "):
                    ids.append(int(line[4:]))
                if len(ids) == 3:
                    break
        assert ids == [1, 2, 3]
    # StopSession sent to a replica that does not run the camera reaches its owner.
    async with following(asker.target, pb.SubscribeRequest(session_id="cam-a")) as sub:
        await sub.until(lambda ev: len(ev) >= 2, 15.0, "cam-a's first events")
        answer = await stub_call(asker.target, "StopSession", pb.StopSessionRequest(session_id="cam-a"))
        assert isinstance(answer, pb.StopSessionResponse) and answer.session.session_id == "cam-a"
        await sub.until(lambda ev: ev[-1].HasField("session_ended"), 10.0, "cam-a's end")
        assert sub.events[-1].session_ended.reason == "stopped"
    await asyncio.sleep(TTL / 3 * 2)  # two ticks: nobody restarts a stopped camera
    leases = await cluster.leases()
    assert leases["cam-a"] == {**leases["cam-a"], "replica": stop_owner.id, "state": "stopped"}

    # SIGTERM drains: the camera is handed over before the process exits, its run continued.
    drained = cluster.replica(owners["cam-b"])
    third = next(r for r in cluster.replicas if r is not drained and r is not stop_owner)
    async with following(third.target, pb.SubscribeRequest(session_id="cam-b")) as sub:
        await sub.until(lambda ev: len(ev) >= 3, 15.0, "cam-b's events")
        run = sub.events[0].run_id
        started = time.monotonic()
        assert await asyncio.to_thread(drained.terminate, scaled(15.0)) == 0
        taken = await _owned_elsewhere(cluster, "cam-b", drained.id, within=TTL)  # not waiting out the TTL
        kinds = lambda ev: [e.WhichOneof("payload") for e in ev]  # noqa: E731
        await sub.until(lambda ev: kinds(ev).count("session_started") == 2 and len(ev) >= 8, 15.0,
                        "cam-b on its new owner")
        handover = taken - started
        gap_free(sub.events)
        assert {e.run_id for e in sub.events} == {run}  # a clean end: the same run goes on
        assert "session_ended" in kinds(sub.events)

    # The NATS server restarts: replicas reconnect, nothing acknowledged is lost.
    watcher = third.target
    async with following(watcher, pb.SubscribeRequest(session_id="cam-c")) as before:
        await before.until(lambda ev: len(ev) >= 3, 15.0, "cam-c's events")
        cluster.stop_nats()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.start_nats)
        seen = list(before.events)
    run_c, last = seen[0].run_id, seen[-1].seq
    async with following(watcher, pb.SubscribeRequest(session_id="cam-c", run_id=run_c, after_seq=last)) as after:
        await after.until(lambda ev: len(ev) >= 5, 25.0, "cam-c after the NATS restart")
        events = seen + after.events
    gap_free(events)
    assert events[0].seq == 1
    assert {e.run_id for e in seen} == {run_c}  # across the restart: every stored event once, in order
    print(f"drain handover: {handover:.2f} s")


async def _owned_elsewhere(cluster: Cluster, camera: str, old: str, *, within: float) -> float:
    deadline = time.monotonic() + scaled(within)
    while time.monotonic() < deadline:
        owner = (await cluster.owners()).get(camera)
        if owner is not None and owner != old:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{camera} was not taken over within {within} s")
