"""Fixtures for the REST and failover tests (helpers live in rest_support)."""

from rest_support import clip, rest_emulator

__all__ = ["clip", "rest_emulator"]
