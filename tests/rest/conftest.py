"""Fixtures for the REST snapshot RPC and CLI tests (helpers live in tests/rest_support.py)."""

from rest_support import clip, rest_emulator

__all__ = ["clip", "rest_emulator"]
