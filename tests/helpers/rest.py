"""The REST emulator's test key (the emulator itself is vision_stream.testing.rest_emulator;
its fixture, ``rest_emulator``, is in tests/conftest.py)."""

from __future__ import annotations

API_KEY = "AIzaTEST-rest-key-0123456789"
