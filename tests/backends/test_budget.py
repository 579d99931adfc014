"""The budget governor (pipeline/budget.py): the ladder, hysteresis, and a CLI replay on
the Live emulator that prints the cost and reports each step as a ``budget`` event."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from pathlib import Path

import pytest
from helpers.live import API_KEY
from helpers.timing import scaled

from vision_stream.config import SamplingPolicy
from vision_stream.pipeline.budget import LADDER, BudgetGovernor
from vision_stream.testing.live_emulator import LiveEmulator
from vision_stream.testing.live_knobs import EmulatorKnobs


def _governor(**kw: float) -> BudgetGovernor:
    return BudgetGovernor(base_sampling=SamplingPolicy(), base_interval=10.0, **kw)  # type: ignore[arg-type]


def test_no_budget_no_changes() -> None:
    governor = _governor()
    assert not governor.active and governor.observe(60.0, 10**9, 1000.0) is None


def test_steps_down_one_rung_per_turn_while_over_and_back_up_after_dwell() -> None:
    governor = _governor(max_cost_per_hour=1.0)
    assert governor.observe(5.0, 0, 0.0) is None  # not a whole turn yet
    change = governor.observe(10.0, 10_000, 0.01)  # $3.60/h
    assert change is not None and change.level == 1 and "over $1/h" in change.reason
    assert change.sampling.fps == 0.5 and change.interval == 10.0
    assert governor.observe(15.0, 10_000, 0.01) is None  # one turn at the new rung first
    change = governor.observe(20.0, 20_000, 0.02)
    assert change is not None and change.level == 2
    assert change.sampling.scene_threshold > SamplingPolicy().scene_threshold
    # Now nothing more is spent: once the session's average falls under 90 % of the budget
    # it climbs back, one rung per dwell (60 s of media), to its own settings.
    changes = [(t, c) for t in range(30, 5000, 10) if (c := governor.observe(float(t), 20_000, 0.02)) is not None]
    ups = [(t, c) for t, c in changes if "well under" in c.reason]
    levels = [c.level for _, c in ups]
    assert levels and levels[-1] == 0 and all(a - b == 1 for a, b in itertools.pairwise(levels))
    assert all(b[0] - a[0] >= 60 for a, b in itertools.pairwise(ups))


def test_token_budget_and_ladder_bottom() -> None:
    governor = _governor(max_tokens_per_hour=1000)
    levels = [c.level for t in range(10, 200, 10) if (c := governor.observe(float(t), t * 100, 0.0)) is not None]
    assert levels == list(range(1, len(LADDER)))  # stops at the last rung
    last = LADDER[-1]
    assert last.interval(10.0) == 40.0 and last.sampling(SamplingPolicy()).fps == 0.25


@pytest.mark.slow
async def test_cli_replay_on_live_prints_cost_and_reports_budget_steps(shared_media: Path) -> None:
    """``replay CLIP --backend live --fast --max-cost-per-hour X`` against the emulator."""
    clip = shared_media / "intel_car-detection.mp4"
    async with LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,))) as emu:
        env = {**os.environ, "GEMINI_API_KEY": API_KEY, "VISION_STREAM_LIVE_URL": emu.url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vision_stream.cli", "replay", str(clip), "--backend", "live", "--fast",
            "--json", "--commentary-interval", "5", "--max-cost-per-hour", "4", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), scaled(90))
    assert proc.returncode == 0, err.decode()[-2000:]
    events = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    budget = [e["error"] for e in events if e.get("error", {}).get("code") == "budget"]
    assert budget and all(b["retryable"] for b in budget) and "over $4/h" in budget[0]["message"]
    totals = events[-1]["sessionEnded"]["totals"]
    assert totals["estimatedCostUsd"] > 0 and int(totals["usage"]["input_video"]) > 0
