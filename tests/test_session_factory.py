"""open_session, the one start path (CLI replay, Stream, Watch, cameras): the
backend is checked before a source opens, and an opened source never outlives
a session that failed to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import SAMPLES

from vision_stream.backends.factory import BackendOptions
from vision_stream.config import Limits, SamplingPolicy, SessionSettings
from vision_stream.errors import LimitExceededError, UsageError
from vision_stream.pipeline import Session
from vision_stream.session_factory import open_session

SETTINGS = SessionSettings(session_id="t")


async def test_a_refused_start_closes_the_opened_source() -> None:
    started: list[Session] = []

    def refuse(session: Session) -> None:
        started.append(session)
        raise LimitExceededError("too many sessions: the server runs at most 1")

    with pytest.raises(LimitExceededError, match="at most 1"):
        await open_session(str(SAMPLES / "sample.mp4"), settings=SETTINGS, backend="local",
                           options=BackendOptions(), sampling=SamplingPolicy(), limits=Limits(), paced=False,
                           lossless=True, start=refuse)
    (session,) = started
    assert list(session.source.items()) == []  # closed: the file yields nothing


async def test_the_backend_is_refused_before_any_source_opens(tmp_path: Path) -> None:
    missing = tmp_path / "never-opened.mp4"
    with pytest.raises(UsageError, match="needs an API key"):
        await open_session(str(missing), settings=SETTINGS, backend="live", options=BackendOptions(),
                           sampling=SamplingPolicy(), limits=Limits(), paced=False, lossless=True)


async def test_without_start_the_caller_runs_the_session() -> None:
    session = await open_session(str(SAMPLES / "sample.mp4"), settings=SETTINGS, backend="local",
                                 options=BackendOptions(), sampling=SamplingPolicy(fps=2), limits=Limits(),
                                 paced=False, lossless=True)
    await session.run()
    kinds = [event.kind for event in session.log.snapshot()]
    assert kinds[0] == "session_started" and kinds[-1] == "session_ended"
