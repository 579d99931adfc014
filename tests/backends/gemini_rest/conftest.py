"""Fixtures for the REST backend tests (helpers live in tests/rest_support.py)."""

from rest_support import rest_emulator

__all__ = ["rest_emulator"]
