"""Configuration values: each default lives in its dataclass; one rule derives a
sampling policy from what a user gave (flags, a client's config, a cameras file)."""

from __future__ import annotations

import pytest

from vision_stream.config import SamplingPolicy
from vision_stream.errors import UsageError


def test_updated_keeps_what_was_not_given() -> None:
    base = SamplingPolicy(fps=2, max_fps=3, jpeg_quality=70)
    assert base.updated() == base
    assert base.updated(fps=None, max_side=None) == base
    assert base.updated(max_side=512) == SamplingPolicy(fps=2, max_fps=3, jpeg_quality=70, max_side=512)


def test_a_higher_fps_raises_the_cap_unless_the_cap_is_given() -> None:
    assert SamplingPolicy().updated(fps=5).max_fps == 5
    assert SamplingPolicy().updated(fps=0.5).max_fps == SamplingPolicy().max_fps
    assert SamplingPolicy().updated(fps=5, max_fps=8).max_fps == 8
    with pytest.raises(UsageError, match=r"max_fps \(1.0\) must be >= fps \(3.0\)"):
        SamplingPolicy().updated(fps=3.0, max_fps=1.0)


def test_bad_values_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="jpeg_quality"):
        SamplingPolicy().updated(jpeg_quality=101)
