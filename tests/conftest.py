"""Fixtures shared by several test directories, and the ``slow`` rule.

Slow tests (marked ``@pytest.mark.slow``: real-time end-to-end runs, a real GStreamer
RTSP server, the fuzz suite, the benchmark smoke test, anything over ~3 s) run:
- always when the environment variable ``CI`` is set (CI sets ``CI=true``; ``.ci/run`` too);
- otherwise only with ``pytest --slow``, or when selected with ``-m slow`` (any ``-m``
  expression naming ``slow`` decides for itself).
Plain ``pytest`` on a laptop skips them and says so in the summary (``-ra``).
Timeouts in tests scale with ``VISION_STREAM_TEST_TIMEOUT_FACTOR`` (helpers/timing.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers.clips import make_clip
from helpers.paths import SHARED
from helpers.rest import API_KEY
from helpers.server import fill_media_root

from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestKnobs


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run tests marked slow (always on when the CI environment variable is set)")


def _run_slow(config: pytest.Config) -> bool:
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return ci or bool(config.getoption("--slow")) or "slow" in (config.option.markexpr or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _run_slow(config):
        return
    skip = pytest.mark.skip(reason="slow: runs with --slow, -m slow, or CI=true")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _private_data_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``serve`` keeps its events (SQLite) under $XDG_DATA_HOME: the suite's servers, subprocesses
    too, use a directory of their own, never the user's (nor each other's across runs)."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """``../shared/media``; tests using it skip when the folder is absent."""
    media = SHARED / "media"
    if not media.is_dir():
        pytest.skip("../shared/media is absent (real footage only exists beside the dev checkout)")
    return media


@pytest.fixture(scope="session")
def live_vectors() -> Path:
    """``../shared/vectors/live``: real recorded Gemini Live sessions."""
    vectors = SHARED / "vectors" / "live"
    if not vectors.is_dir():
        pytest.skip("../shared/vectors/live is absent")
    return vectors


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    """A media root holding the sample clip and still (the server's and security tests' Watch files)."""
    return fill_media_root(tmp_path / "media")


@pytest.fixture
async def rest_emulator() -> AsyncIterator[RestEmulator]:
    """The Gemini REST emulator on loopback, accepting helpers.rest.API_KEY."""
    async with RestEmulator(RestKnobs(api_keys=(API_KEY,))) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of H.264 at 10 fps, 320x240: a square moving right on grey, a hard cut to blue at 2 s."""
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=4.0, fps=10, cut_at=2.0)
