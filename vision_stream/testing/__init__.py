"""Test doubles shipped with the package: a wire-faithful Gemini Live emulator.

``serve_emulator(host, port, knobs)`` runs it until cancelled (``vision-stream
emulate``); :class:`LiveEmulator` is the in-process form tests use.
"""

from __future__ import annotations

from .live_emulator import LiveEmulator, serve_emulator
from .live_knobs import EmulatorKnobs, Fault

__all__ = ["EmulatorKnobs", "Fault", "LiveEmulator", "serve_emulator"]
