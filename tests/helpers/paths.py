"""Paths shared by the tests: the repository, its samples, and real footage beside the checkout."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
# Real footage and recorded sessions live beside the checkout, never inside it.
SHARED = ROOT.parent / "shared"
# 30 s of traffic seen from above (cars in both directions): the clip tests name cars on.
TRAFFIC_CLIP = SHARED / "media" / "intel_car-detection.mp4"
