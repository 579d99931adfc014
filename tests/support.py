"""Paths shared by the tests (importable as ``support``: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
# Real footage and recorded sessions live beside the checkout, never inside it.
SHARED = ROOT.parent / "shared"
