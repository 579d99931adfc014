"""Media fixtures: the shipped sample clip and still (generated clips: helpers.clips)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.paths import SAMPLES


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """samples/sample.mp4 (timeline in samples/README.md)."""
    path = SAMPLES / "sample.mp4"
    assert path.is_file(), "run samples/make_samples.py"
    return path


@pytest.fixture(scope="session")
def still_jpeg() -> bytes:
    return (SAMPLES / "still.jpg").read_bytes()
