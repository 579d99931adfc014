"""Fixtures for the Live tests (helpers live in live_support, importable by name)."""

from live_support import live_emulator

__all__ = ["live_emulator"]
