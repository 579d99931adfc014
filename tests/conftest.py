"""Fixtures shared by every test module."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SHARED


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

