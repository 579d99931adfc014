"""Property-based fuzzing of every client input, against one real server on loopback.

For every generated call: it ends by itself within CALL_BOUND seconds, with a documented
status code, a bounded status message (and error events) that never show the media root's
path. Throughout: a canary Watch keeps producing events without gaps and ends normally when
stopped; afterwards the server's RSS is back within RSS_BOUND_MIB of its baseline.

Fixed seed (derandomize) and a fixed example budget keep CI fast and repeatable; no shrinking
(a shrink over calls that may take seconds each has no useful bound); every example runs and a
target fails at its end with all the broken properties it saw. For a deeper local run,
VISION_STREAM_FUZZ_SCALE=10 multiplies the budgets.
The report (cases per target, status codes, RSS before/after) goes to
/tmp/vision_stream_fuzz_report.json and to the end of the pytest output.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from helpers import fuzz_strategies as fs
from helpers.fuzz import (
    CALL_BOUND,
    REPORT_PATH,
    Canary,
    FuzzServer,
    Outcome,
    Report,
    Seeds,
    brief,
    copy_media,
    follow,
    make_seeds,
    rss_mib,
    stop_strays,
    stream,
    unary,
    violations,
)
from helpers.paths import SAMPLES
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from vision_stream.config import Limits
from vision_stream.v1 import vision_stream_pb2 as pb

# The fuzz suite: a server, a canary session and thousands of generated cases.
pytestmark = pytest.mark.slow

T = TypeVar("T")
SCALE = float(os.environ.get("VISION_STREAM_FUZZ_SCALE", "1"))
RSS_BOUND_MIB = 150.0
CANARY_MAX_GAP = 5.0  # seconds; the canary emits stats + commentary every second of media


def explore(fuzz: Fuzz, examples: int, case: Callable[[st.DataObject], None]) -> None:
    """Run ``case`` over ``examples`` generated inputs (fixed seed), then fail listing every
    broken property with its (bounded) example.

    ``case`` records violations instead of raising them: every example runs, so the report's
    counts stay comparable, and hypothesis never replays a failing example (a replay over a
    live server is not deterministic, and hypothesis would print megabyte reprs).
    """
    fuzz.pending.clear()
    run = settings(
        max_examples=max(1, int(examples * SCALE)), derandomize=True, database=None, deadline=None,
        phases=(Phase.explicit, Phase.generate), print_blob=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                               HealthCheck.filter_too_much],
    )(given(data=st.data())(case))
    run()
    problems, fuzz.pending = fuzz.pending, []
    assert not problems, f"{len(problems)} broken properties:\n" + "\n".join(problems[:10])


@dataclass
class Fuzz:
    server: FuzzServer
    canary: Canary
    seeds: Seeds
    report: Report
    rss_before: float
    pending: list[str] = field(default_factory=list)  # broken properties of the running target

    def check(self, outcome: Outcome, example: Callable[[], str], extra: list[str] | None = None) -> None:
        """Record the outcome and any broken property (explore() fails on them at the end)."""
        problems = violations(outcome, self.server.secrets()) + (extra or [])
        if self.canary.failure or self.canary.end is not None:
            problems.append(f"the canary ended during the fuzzing: {self.canary.failure or self.canary.end}")
        shown_example = example() if problems else ""
        self.report.add(outcome, problems, shown_example)
        self.pending.extend(f"{outcome.target}: {problem}\n    example: {shown_example[:1000]}" for problem in problems)

    def run(self, coro: object) -> Outcome:
        return self.server.run(coro, CALL_BOUND + 15)  # type: ignore[arg-type]


def shown(*values: object) -> str:
    """A bounded rendering of an example for the report (strings may be megabytes)."""
    parts = []
    for value in values:
        if isinstance(value, Message):
            parts.append(brief(value))
        elif isinstance(value, list | tuple):
            parts.append("[" + shown(*value) + "]")
        elif isinstance(value, bytes | str) and len(value) > 80:
            parts.append(f"{value[:60]!r}...[{len(value)}]")
        else:
            parts.append(repr(value))
    return " | ".join(parts)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Fuzz]:
    # grpc.aio makes a call object in the thread that calls the stub and asks that thread for its
    # event loop (cygrpc.get_working_loop); after earlier async tests pytest-asyncio leaves the main
    # thread with none, so this sync module lends it one (the calls still run on the server's loop).
    main_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(main_loop)
    request.addfinalizer(main_loop.close)
    request.addfinalizer(lambda: asyncio.set_event_loop(None))
    root = tmp_path_factory.mktemp("fuzz") / "media"
    copy_media(root)
    server = FuzzServer(root, Limits(max_sessions=16))
    canary = Canary(server, fs.CANARY_ID)
    report = Report()
    try:
        seeds = make_seeds()
        canary.start()
        # Warm-up: first use of each decoder and analysis path allocates for good; not a leak.
        for clip in seeds.clips.values():
            server.run(stream(server.sync_stub, [pb.StreamRequest(config=fs.good_config()),
                                            pb.StreamRequest(media=pb.MediaChunk(data=clip))]), 30)
        server.run(unary("warm-up", server.stub.AnalyzeSnapshot(
            pb.SnapshotRequest(image=pb.VideoFrame(data=seeds.jpeg)), timeout=10)), 15)
        before = rss_mib()
        report.numbers.update(rss_before_mib=round(before, 1), canary_first_seq=canary.last_seq())
        yield Fuzz(server, canary, seeds, report, before)
    finally:
        try:
            if canary.end is None and canary.failure is None:
                canary.stop()
            server.close()
        finally:
            report.write()
            terminal = request.config.pluginmanager.get_plugin("terminalreporter")
            if terminal is not None:
                data = report.as_dict()
                terminal.write_line(
                    f"\nfuzz: {data['total_cases']} cases {data['cases']}; codes {data['codes_total']}; "
                    f"RSS {data.get('rss_before_mib')} -> {data.get('rss_after_mib')} MiB; "
                    f"{len(data['violations'])} violations; report {REPORT_PATH}")


CONFIG = pb.StreamRequest(config=fs.good_config())


@pytest.fixture(autouse=True)
def rss_per_target(fuzz: Fuzz, request: pytest.FixtureRequest) -> Iterator[None]:
    """RSS after each target, so growth in the report points at the target that caused it."""
    yield
    fuzz.report.numbers.setdefault("rss_after_target_mib", {})[request.node.name] = round(rss_mib(), 1)


def still(fuzz: Fuzz) -> pb.StreamRequest:
    return pb.StreamRequest(frame=pb.VideoFrame(data=fuzz.seeds.jpeg, media_time=0.0))


# ------------------------------------------------------------------ Stream
# Every target draws through draw(): hypothesis prints the drawn values of a failing example, and
# a plain repr of megabyte strings is both useless and (as a HypothesisWarning) an error here.


class Shown(Generic[T]):
    """A drawn value whose repr is the bounded rendering of :func:`shown`."""

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return shown(self.value)


def draw(data: st.DataObject, strategy: st.SearchStrategy[T]) -> T:
    return data.draw(strategy.map(Shown)).value


def test_stream_session_config(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        config = draw(data, fs.configs)
        messages = [pb.StreamRequest(config=config), still(fuzz)]
        fuzz.check(fuzz.run(stream(fuzz.server.sync_stub, messages)), lambda: shown(config))

    explore(fuzz, 120, case)


def test_stream_video_frames(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        frames = draw(data, st.lists(fs.frames(fuzz.seeds), min_size=1, max_size=4))
        messages = [CONFIG, *[pb.StreamRequest(frame=f) for f in frames]]
        outcome = fuzz.run(stream(fuzz.server.sync_stub, messages))
        lost = []
        if outcome.code == grpc.StatusCode.OK and outcome.totals is not None:
            # Nothing lost silently: OK means every frame was taken in (decoded, or counted bad).
            counted = outcome.totals.frames_in + outcome.totals.bad_packets
            if counted != len(frames):
                lost.append(f"status OK but {counted} of {len(frames)} frames counted (frames_in + bad_packets)")
        fuzz.check(outcome, lambda: shown(*frames), lost)

    explore(fuzz, 120, case)


def test_stream_audio_chunks(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        chunks = draw(data, st.lists(fs.audio(), min_size=1, max_size=4))
        messages = [CONFIG, *[pb.StreamRequest(audio=a) for a in chunks]]
        fuzz.check(fuzz.run(stream(fuzz.server.sync_stub, messages)), lambda: shown(*chunks))

    explore(fuzz, 80, case)


def test_stream_mutated_container_bytes(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        pieces = draw(data, fs.clip_pieces(fuzz.seeds))
        messages = [CONFIG, *[pb.StreamRequest(media=pb.MediaChunk(data=p)) for p in pieces]]
        fuzz.check(fuzz.run(stream(fuzz.server.sync_stub, messages)), lambda: shown(pieces))

    explore(fuzz, 120, case)


def test_stream_prompts_and_tool_results(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        items = draw(data, st.lists(st.one_of(fs.prompts.map(lambda t: pb.StreamRequest(prompt=pb.Prompt(text=t))),
                                              fs.tool_results.map(lambda t: pb.StreamRequest(tool_result=t))),
                                    min_size=1, max_size=3))
        messages = [CONFIG, still(fuzz), *items]
        fuzz.check(fuzz.run(stream(fuzz.server.sync_stub, messages)), lambda: shown(*items))

    explore(fuzz, 80, case)


def test_stream_message_sequences(fuzz: Fuzz) -> None:
    """Any order: config missing, late or twice, modes mixed, empty messages."""
    def case(data: st.DataObject) -> None:
        head = draw(data, st.sampled_from([[CONFIG], [CONFIG], [], [CONFIG, CONFIG]]))
        body = draw(data, st.lists(fs.stream_messages(fuzz.seeds), max_size=6))
        messages = [*head, *body]
        fuzz.check(fuzz.run(stream(fuzz.server.sync_stub, messages)), lambda: shown(*messages))

    explore(fuzz, 120, case)


# ------------------------------------------------------------------ the other RPCs


def test_watch_sources(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        request = draw(data, fs.watch_requests)
        stub = fuzz.server.stub
        outcome = fuzz.run(follow("Watch", stub.Watch(request, timeout=CALL_BOUND + 5), follow_for=1.0))
        fuzz.server.run(stop_strays(stub, keep=fs.CANARY_ID), 20)
        fuzz.check(outcome, lambda: shown(request))

    explore(fuzz, 60, case)


def test_subscribe(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        request = draw(data, st.builds(pb.SubscribeRequest, session_id=fs.subscribe_ids, after_seq=fs.after_seqs,
                                       allow_gap=st.booleans()))
        call = fuzz.server.stub.Subscribe(request, timeout=CALL_BOUND + 5)
        fuzz.check(fuzz.run(follow("Subscribe", call, follow_for=0.5)), lambda: shown(request))

    explore(fuzz, 40, case)


def test_stop_and_list_sessions(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        request = draw(data, st.builds(pb.StopSessionRequest, session_id=fs.stop_ids))
        stub = fuzz.server.stub
        stop = stub.StopSession(request, timeout=CALL_BOUND)
        fuzz.check(fuzz.run(unary("StopSession", stop)), lambda: shown(request))
        listing = stub.ListSessions(pb.ListSessionsRequest(), timeout=CALL_BOUND)
        fuzz.check(fuzz.run(unary("ListSessions", listing)), lambda: "ListSessions after " + shown(request))

    explore(fuzz, 50, case)


def test_analyze_snapshot(fuzz: Fuzz) -> None:
    def case(data: st.DataObject) -> None:
        request = draw(data, fs.snapshots(fuzz.seeds))
        call = fuzz.server.stub.AnalyzeSnapshot(request, timeout=CALL_BOUND + 5)
        fuzz.check(fuzz.run(unary("AnalyzeSnapshot", call)), lambda: shown(request))

    explore(fuzz, 150, case)


# ------------------------------------------------------------------ reproducers of what the fuzz found
# Each case is the minimal input for one bug the fuzzing found (issue 9), kept as a regression test.

DEEP = 100_000
STILL_JPEG = (SAMPLES / "still.jpg").read_bytes()


def _stream_case(*messages: pb.StreamRequest) -> Callable[[Fuzz], Outcome]:
    return lambda fuzz: fuzz.run(stream(fuzz.server.sync_stub, list(messages)))


def _stop_case(session_id: str) -> Callable[[Fuzz], Outcome]:
    def run(fuzz: Fuzz) -> Outcome:
        call = fuzz.server.stub.StopSession(pb.StopSessionRequest(session_id=session_id), timeout=CALL_BOUND)
        return fuzz.run(unary("StopSession", call))

    return run


def _watch_case(source: str) -> Callable[[Fuzz], Outcome]:
    def run(fuzz: Fuzz) -> Outcome:
        call = fuzz.server.stub.Watch(pb.WatchRequest(source=source, config=fs.good_config()), timeout=CALL_BOUND)
        return fuzz.run(follow("Watch", call, follow_for=1.0))

    return run


REPRODUCERS: dict[str, tuple[Callable[[Fuzz], Outcome], str]] = {
    # RecursionError from json.loads escapes as UNKNOWN "Unexpected <class 'RecursionError'>".
    "deep-function-schema": (_stream_case(pb.StreamRequest(config=fs.good_config(
        functions=[pb.FunctionDeclaration(name="f", parameters_json="[" * DEEP)]))), "UNKNOWN from a RecursionError"),
    # Ends with OK and no error event: the tool result is dropped silently (issue item 5).
    "deep-tool-result": (_stream_case(CONFIG, pb.StreamRequest(frame=pb.VideoFrame(data=STILL_JPEG, media_time=0)),
                                      pb.StreamRequest(tool_result=pb.ToolResult(
                                          call_id="c", name="f", response_json='{"a":' * DEEP + "1" + "}" * DEEP))),
                         "over-nested tool_result ends the input silently with OK"),
    # NOT_FOUND echoes the whole id: > 1024 chars, and over 16 KiB gRPC drops the status
    # (the client sees RESOURCE_EXHAUSTED "received metadata size exceeds hard limit").
    "long-session-id-echo": (_stop_case("x" * 70_000), "NOT_FOUND message echoes the whole session id"),
    "long-backend-echo": (_stream_case(pb.StreamRequest(config=pb.SessionConfig(backend="x" * 70_000))),
                          "INVALID_ARGUMENT message echoes the whole backend name"),
    # ENAMETOOLONG escapes as UNKNOWN with the media root's absolute path.
    "long-path-component": (_watch_case("y" * 256), "UNKNOWN with the absolute media-root path"),
}


@pytest.mark.parametrize("case", sorted(REPRODUCERS))
def test_reproducer(fuzz: Fuzz, case: str) -> None:
    run, _bug = REPRODUCERS[case]
    outcome = run(fuzz)
    problems = violations(outcome, fuzz.server.secrets())
    if case == "deep-tool-result" and outcome.code == grpc.StatusCode.OK:
        problems.append("the over-nested tool_result was dropped with status OK")
    assert not problems, f"{case}: {problems} ({outcome.code}, {outcome.details[:200]!r})"


# ------------------------------------------------------------------ afterwards (runs last: file order)


def test_canary_unaffected_and_rss_back(fuzz: Fuzz) -> None:
    canary = fuzz.canary
    assert canary.failure is None and canary.end is None, (canary.failure, canary.end)
    seqs = list(canary.seqs)
    assert seqs == list(range(1, len(seqs) + 1)), "canary seq has gaps or repeats"
    grown = seqs[-1] - fuzz.report.numbers["canary_first_seq"]
    assert grown >= 3, f"canary seq grew by only {grown} during the fuzzing"
    gap = canary.max_gap()
    fuzz.report.numbers.update(canary_events=len(seqs), canary_max_gap_s=round(gap, 2))
    canary.stop()
    assert canary.end is not None and canary.end.reason == "stopped", (canary.failure, canary.end)

    strays = fuzz.server.run(stop_strays(fuzz.server.stub, keep=""), 30)
    deadline = time.monotonic() + 10
    while fuzz.server.running.registry.running_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    after = rss_mib()
    fuzz.report.numbers.update(rss_after_mib=round(after, 1), rss_growth_mib=round(after - fuzz.rss_before, 1),
                               strays_stopped_at_end=strays)
    assert after - fuzz.rss_before <= RSS_BOUND_MIB, f"RSS {fuzz.rss_before:.0f} -> {after:.0f} MiB"
    assert gap <= CANARY_MAX_GAP, f"the canary waited {gap:.1f} s for an event during the fuzzing"
    # A server that took all that still answers.
    assert fuzz.server.run(unary("ListSessions", fuzz.server.stub.ListSessions(pb.ListSessionsRequest(), timeout=5)),
                           10).code == grpc.StatusCode.OK


# After the canary's check on purpose: before the fix this call froze the whole server for seconds.
def test_scrub_of_a_long_message_does_not_block_the_server(fuzz: Fuzz) -> None:
    """redact.scrub's URL pattern rescans from every letter of a long word: quadratic, and ``re``
    holds the GIL, so every session, health and the canary stop for the call (64k chars ~4.5 s,
    1 MB ~20 min: one StopSession with a megabyte id wedges the server)."""
    outcome = _stop_case("x" * 64_000)(fuzz)
    assert outcome.code == grpc.StatusCode.NOT_FOUND and outcome.elapsed < 1.0, (outcome.code, outcome.elapsed)
