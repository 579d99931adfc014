"""Authorization matrix: every RPC x every right x own/other's session, on one real server.

Callers: token ``R`` holds exactly the right R; token ``own-R`` holds R plus
``push`` (so it could create its own session through Stream; ``push`` is not
the right any session RPC needs, so its verdict depends on R alone);
``own-admin`` is admin only; ``owner`` (push) owns the "other's" session.
The server is started once per module with those tokens; sessions are tiny
pushed Streams (a config and three JPEG frames, backend "local") that have
ended, so StopSession on them is idempotent and the cases are independent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from helpers.paths import SAMPLES
from helpers.server import Served, bearer, serve, write_tokens

from vision_stream.config import Limits
from vision_stream.server.access import SourceAccess
from vision_stream.server.auth import RIGHTS, load_tokens, right_for
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

RIGHT_NAMES = sorted(RIGHTS)
CONFIG = pb.SessionConfig(backend="local", commentary_interval=60)
JPEG = (SAMPLES / "still.jpg").read_bytes()


class Matrix:
    def __init__(self, served: Served, tokens: dict[str, str]) -> None:
        self.served = served
        self.tokens = tokens
        self.own: dict[str, str] = {}  # right -> id of the session own-<right> created
        self.other = ""  # id of the session "owner" created


def tiny_stream(session_id: str = "") -> list[pb.StreamRequest]:
    config = pb.SessionConfig()
    config.CopyFrom(CONFIG)
    config.session_id = session_id
    frames = [pb.StreamRequest(frame=pb.VideoFrame(data=JPEG, media_time=float(i))) for i in range(3)]
    return [pb.StreamRequest(config=config), *frames]


def stream_call(served: Served, metadata: object, session_id: str = "") -> tuple[object, asyncio.Event]:
    """A Stream call whose frames wait for ``gate`` (set on the first event, or when the call ends).

    grpc.aio's client replaces the server's status with INTERNAL "Internal error
    from Core" when a write fails after the server ended the call (grpc#36066),
    so a refused call must not have writes in flight: the config goes first,
    the frames once the server has admitted the session (as client.push_file does).
    """
    gate = asyncio.Event()
    messages = tiny_stream(session_id)

    async def requests() -> AsyncIterator[pb.StreamRequest]:
        yield messages[0]
        await gate.wait()
        for message in messages[1:]:
            yield message

    call = served.stub.Stream(requests(), metadata=metadata)
    call.add_done_callback(lambda _: gate.set())
    return call, gate


async def push_session(served: Served, token: str, session_id: str) -> list[pb.Event]:
    call, gate = stream_call(served, bearer(token), session_id)
    events = []
    async for event in call:  # type: ignore[attr-defined]
        gate.set()
        events.append(event)
    return events


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def matrix(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Matrix]:
    tmp = tmp_path_factory.mktemp("authz")
    rights: dict[str, set[str]] = {r: {r} for r in RIGHT_NAMES}
    rights |= {f"own-{r}": {r, "push"} if r != "admin" else {r} for r in RIGHT_NAMES}
    rights["owner"] = {"push"}
    tokens = write_tokens(tmp / "tokens.toml", rights)
    config = ServiceConfig(access=SourceAccess(media_root=SAMPLES), limits=Limits(max_sessions=16))
    async for served in serve(config, SAMPLES, tokens=load_tokens(tmp / "tokens.toml")):
        m = Matrix(served, tokens)
        for r in RIGHT_NAMES:
            events = await push_session(served, tokens[f"own-{r}"], f"own-{r}")
            assert events[-1].HasField("session_ended")
            m.own[r] = events[0].session_id
        m.other = (await push_session(served, tokens["owner"], "others"))[0].session_id
        yield m


async def outcome(call: object) -> tuple[grpc.StatusCode, str]:
    """Run ``call`` (a unary call or a stream call) and return its status and details.
    A stream that yields one event was admitted: it counts as OK and is cancelled."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:  # type: ignore[attr-defined]
                break
            call.cancel()  # type: ignore[attr-defined]
        else:
            await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details() or ""
    return OK, ""


async def status_of(call: object) -> grpc.StatusCode:
    return (await outcome(call))[0]


def expected(right: str, needed: str, target: str) -> grpc.StatusCode:
    """The documented verdict: the right first, then visibility (NOT_FOUND hides others' sessions)."""
    if right not in (needed, "admin"):
        return PERMISSION_DENIED
    if target == "other" and right != "admin":
        return NOT_FOUND
    return OK


# ------------------------------------------------------------- session-less RPCs

def session_less_call(m: Matrix, rpc: str, metadata: object) -> object:
    stub = m.served.stub
    if rpc == "Stream":
        return stream_call(m.served, metadata)[0]
    if rpc == "Watch":
        return stub.Watch(pb.WatchRequest(source="sample.mp4", fast=True, config=CONFIG), metadata=metadata)
    if rpc == "AnalyzeSnapshot":
        return stub.AnalyzeSnapshot(pb.SnapshotRequest(image=pb.VideoFrame(data=JPEG), backend="local"),
                                    metadata=metadata)
    raise AssertionError(rpc)


@pytest.mark.parametrize("right", RIGHT_NAMES)
@pytest.mark.parametrize("rpc", ["Stream", "Watch", "AnalyzeSnapshot"])
async def test_session_less_rpcs_need_their_right(matrix: Matrix, rpc: str, right: str) -> None:

    code, details = await outcome(session_less_call(matrix, rpc, bearer(matrix.tokens[right])))
    assert code == expected(right, right_for(rpc), "own"), (rpc, right, code, details)


# ------------------------------------------------------------------ session RPCs

SESSION_RPCS = ["Subscribe", "StopSession", "SetConditions", "GetFrames", "ExportClip"]


def session_call(m: Matrix, rpc: str, session_id: str, metadata: object) -> object:
    stub = m.served.stub
    if rpc == "Subscribe":
        return stub.Subscribe(pb.SubscribeRequest(session_id=session_id), metadata=metadata)
    if rpc == "StopSession":
        return stub.StopSession(pb.StopSessionRequest(session_id=session_id), metadata=metadata)
    if rpc == "SetConditions":
        return stub.SetConditions(pb.SetConditionsRequest(session_id=session_id), metadata=metadata)
    if rpc == "GetFrames":
        return stub.GetFrames(pb.GetFramesRequest(session_id=session_id), metadata=metadata)
    if rpc == "ExportClip":
        return stub.ExportClip(pb.ExportClipRequest(session_id=session_id), metadata=metadata)
    raise AssertionError(rpc)


# Refusals that are the access check's; any other outcome means the caller got past it
# (an ended session may then answer e.g. FAILED_PRECONDITION or OUT_OF_RANGE).
ACCESS_REFUSALS = {PERMISSION_DENIED, NOT_FOUND, UNAUTHENTICATED}


@pytest.mark.parametrize("target", ["own", "other", "missing"])
@pytest.mark.parametrize("right", RIGHT_NAMES)
@pytest.mark.parametrize("rpc", SESSION_RPCS)
async def test_session_rpcs_need_their_right_and_ownership(matrix: Matrix, rpc: str, right: str,
                                                            target: str) -> None:
    caller = f"own-{right}" if target == "own" else right
    session_id = {"own": matrix.own[right], "other": matrix.other, "missing": "no-such-session"}[target]
    code = await status_of(session_call(matrix, rpc, session_id, bearer(matrix.tokens[caller])))
    want = expected(right, right_for(rpc), target)
    if target == "missing" and want is OK:
        want = NOT_FOUND
    if want is OK:
        assert code not in ACCESS_REFUSALS, (rpc, right, target, code)
    else:
        assert code == want, (rpc, right, target, code)


@pytest.mark.parametrize("right", RIGHT_NAMES)
async def test_list_sessions_shows_only_what_the_caller_may_see(matrix: Matrix, right: str) -> None:
    for caller, own_id in ((right, None), (f"own-{right}", matrix.own[right])):
        call = matrix.served.stub.ListSessions(pb.ListSessionsRequest(), metadata=bearer(matrix.tokens[caller]))
        if right not in ("subscribe", "admin"):
            assert await status_of(call) == PERMISSION_DENIED
            continue
        listed = {s.session_id for s in (await call).sessions}
        assert (matrix.other in listed) == (right == "admin"), (caller, listed)
        if own_id is not None:
            assert own_id in listed
        if right != "admin":
            assert listed <= ({own_id} if own_id else set())


# ---------------------------------------------------------------- no valid token

ALL_RPCS = ["Stream", "Watch", "AnalyzeSnapshot", *SESSION_RPCS, "ListSessions"]


@pytest.mark.parametrize("credential", ["none", "wrong", "malformed"])
@pytest.mark.parametrize("rpc", ALL_RPCS)
async def test_every_rpc_without_a_valid_token_is_unauthenticated(matrix: Matrix, rpc: str,
                                                                  credential: str) -> None:
    metadata = {"none": None, "wrong": bearer("vst_not-a-configured-token"),
                "malformed": (("authorization", f"Basic {matrix.tokens['admin']}"),)}[credential]
    if rpc in SESSION_RPCS:
        call = session_call(matrix, rpc, matrix.other, metadata)
    elif rpc == "ListSessions":
        call = matrix.served.stub.ListSessions(pb.ListSessionsRequest(), metadata=metadata)
    else:
        call = session_less_call(matrix, rpc, metadata)
    code, details = await outcome(call)
    assert code == UNAUTHENTICATED, (rpc, credential, code)
    assert "not-a-configured" not in details and matrix.tokens["admin"] not in details  # secrets never echoed


async def test_every_rpc_of_the_proto_is_in_the_matrix() -> None:
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["VisionStream"].methods}
    assert methods == set(ALL_RPCS)

