"""The commentary cadence policy with plain numbers: media time in, prompt reasons out."""

from __future__ import annotations

from vision_stream.pipeline.cadence import MIN_SCENE_PROMPT_GAP, CommentaryCadence


def prompts(cadence: CommentaryCadence, frames: list[tuple[float, str]]) -> list[tuple[float, str]]:
    out = []
    for t, reason in frames:
        due = cadence.on_frame(t, reason)
        if due is not None:
            out.append((t, due))
    return out


def test_one_cadence_prompt_per_interval_counted_from_the_first_frame() -> None:
    frames = [(10.0 + i * 0.5, "cadence") for i in range(13)]  # 10.0 .. 16.0
    assert prompts(CommentaryCadence(2.0), frames) == [(12.0, "cadence"), (14.0, "cadence"), (16.0, "cadence")]


def test_a_gap_skips_missed_intervals_instead_of_a_burst() -> None:
    cadence = CommentaryCadence(1.0)
    assert prompts(cadence, [(0.0, "cadence"), (7.5, "cadence"), (7.6, "cadence"), (8.0, "cadence")]) == [
        (7.5, "cadence"), (8.0, "cadence"),
    ]


def test_scene_prompts_at_once_unless_a_prompt_was_recent() -> None:
    assert MIN_SCENE_PROMPT_GAP == 2.0
    frames = [(0.0, "cadence"), (0.5, "scene"), (1.0, "scene"), (2.5, "scene"), (5.0, "cadence"), (6.0, "scene"),
              (7.0, "scene")]
    assert prompts(CommentaryCadence(5.0), frames) == [
        (0.5, "scene"), (2.5, "scene"), (5.0, "cadence"), (7.0, "scene"),
    ]


def test_a_due_cadence_prompt_wins_over_a_scene_on_the_same_frame() -> None:
    assert prompts(CommentaryCadence(1.0), [(0.0, "scene"), (1.0, "scene")]) == [(0.0, "scene"), (1.0, "cadence")]
