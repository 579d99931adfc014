"""Sessions through the real pipeline: FileSource → sampler → offline analyzer → event log."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.clips import make_clip, square_on_grey
from helpers.timing import scaled

from vision_stream.backends.local import LocalBackend
from vision_stream.config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from vision_stream.events import Detection, Event, SessionEnded
from vision_stream.media.file_source import FileSource
from vision_stream.pipeline import Session


async def run_session(path: Path, *, paced: bool) -> list[Event]:
    session = Session(
        settings=SessionSettings(session_id="t", commentary_interval=1.0),
        source=FileSource(path, audio=AudioPolicy()),
        backend=LocalBackend(),
        sampling=SamplingPolicy(fps=2, max_fps=4),
        limits=Limits(),
        paced=paced,
        lossless=not paced,
    )
    await session.run()
    return session.log.snapshot()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 25 fps: a square moving right 4 px per frame on grey, a hard cut to blue at 2 s."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=3.0, fps=25,
                     picture=square_on_grey(step=4, cut_at=2.0))


async def test_paced_and_fast_replays_make_identical_decisions(clip: Path) -> None:
    fast = await run_session(clip, paced=False)
    paced = await run_session(clip, paced=True)

    def decisions(events: list[Event]) -> list[tuple[str, float | None, str]]:
        return [
            (e.kind, e.media_time, e.payload.label if isinstance(e.payload, Detection) else "")
            for e in events
            if e.kind in ("detection", "commentary")
        ]

    assert decisions(fast) == decisions(paced)
    end_fast, end_paced = fast[-1].payload, paced[-1].payload
    assert isinstance(end_fast, SessionEnded) and isinstance(end_paced, SessionEnded)
    assert end_fast.totals.frames_sent == end_paced.totals.frames_sent >= 6
    assert end_paced.totals.frames_dropped == 0
    # Paced replay took about the clip's length; fast did not wait.
    assert end_paced.totals.media_seconds == pytest.approx(end_fast.totals.media_seconds)


async def test_stop_mid_replay_ends_with_one_session_ended(clip: Path) -> None:
    import asyncio

    session = Session(
        settings=SessionSettings(session_id="t"), source=FileSource(clip, audio=AudioPolicy(), loop=True),
        backend=LocalBackend(), sampling=SamplingPolicy(), limits=Limits(), paced=True, lossless=False,
    )
    runner = asyncio.create_task(session.run())
    await asyncio.sleep(0.5)
    session.stop("stopped")
    await asyncio.wait_for(runner, scaled(10))
    ended = [e for e in session.log.snapshot() if e.kind == "session_ended"]
    assert len(ended) == 1 and ended[0].payload.reason == "stopped"
    assert [e.seq for e in session.log.snapshot()] == list(range(1, session.log.last_seq + 1))


async def test_an_ended_sessions_numbers_stay_put(clip: Path) -> None:
    """ListSessions keeps showing an ended session: its fps are those of its end, not falling
    for as long as it is kept; and each sampled frame counted once (sent + dropped)."""
    import asyncio

    session = Session(
        settings=SessionSettings(session_id="ended", commentary_interval=1.0),
        source=FileSource(clip, audio=AudioPolicy()),
        backend=LocalBackend(),
        sampling=SamplingPolicy(fps=2, max_fps=4),
        limits=Limits(),
        paced=False,
        lossless=True,
    )
    await session.run()
    end = session.log.snapshot()[-1].payload
    assert isinstance(end, SessionEnded)
    first = session.stats()
    await asyncio.sleep(0.3)
    later = session.stats()
    assert first.fps_in > 0 and (later.fps_in, later.fps_out) == (first.fps_in, first.fps_out)
    assert (later.fps_in, later.fps_out) == (end.totals.fps_in, end.totals.fps_out)
    assert end.totals.frames_sampled == end.totals.frames_sent + end.totals.frames_dropped
    assert end.totals.frames_in == 75  # 3 s at 25 fps: every frame handed to the sampler
