"""Prompt wording, the system instruction per medium, and the one coalescing rank."""

from __future__ import annotations

import pytest

from vision_stream.backends.prompts import (
    DEFAULT_PERSONA,
    PROMPT_RANK,
    PROMPTS,
    SEND_ORDER,
    prompt_text,
    rank,
    replaces,
    system_instruction,
)
from vision_stream.config import SessionSettings

ORDER = ["cadence", "scene", "client", "final"]  # lowest first


def test_rank_orders_final_over_client_over_scene_over_cadence() -> None:
    assert [rank(r) for r in ORDER] == sorted(rank(r) for r in ORDER)
    assert len({rank(r) for r in ORDER}) == len(ORDER)
    assert rank("retry") == rank("scene") and rank("auto") == rank("cadence") == rank("unheard-of") == 0
    assert set(SEND_ORDER) <= set(PROMPT_RANK)


@pytest.mark.parametrize(("offered", "waiting", "taken"), [
    ("cadence", None, True),
    ("cadence", "cadence", True),  # equal rank: the newer one is about a fresher moment
    ("scene", "cadence", True),
    ("cadence", "scene", False),
    ("client", "final", False),
    ("final", "client", True),
    ("retry", "client", False),
    ("client", "retry", True),
])
def test_a_new_prompt_takes_the_waiting_slot_unless_it_ranks_lower(offered: str, waiting: str | None,
                                                                   taken: bool) -> None:
    assert replaces(offered, waiting) is taken


def test_prompt_text_is_the_clients_own_or_the_reasons_wording() -> None:
    assert prompt_text("  what colour is the car? ", "client") == "what colour is the car?"
    assert prompt_text("", "scene") == PROMPTS["scene"]
    assert prompt_text(" ", "whatever") == PROMPTS["cadence"]


def test_system_instruction_per_medium() -> None:
    session = SessionSettings(session_id="s", persona="a terse narrator", source_description="a car park",
                              language="de-DE")
    stream = system_instruction(session, "stream")
    snapshot = system_instruction(session, "snapshot")
    live = system_instruction(session, "live")
    for text in (stream, snapshot, live):
        assert text.startswith("You are a terse narrator.") and "a car park" in text and text.endswith("de-DE.")
    assert "still frames of a video stream" in stream and "a picture" in snapshot and "report_event" in live
    default = system_instruction(None, "snapshot")
    assert DEFAULT_PERSONA in default and "en-US" in default and "The stream is" not in default
