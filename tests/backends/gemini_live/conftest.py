"""Fixtures for the Live tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from helpers.live import checked_emulator


@pytest.fixture
def live_emulator() -> Callable[..., object]:
    """``async with live_emulator(knobs, strict=True) as emu`` (helpers.live.checked_emulator)."""
    return checked_emulator
