"""One time scale for the tests' timeouts, and one way to wait for a condition.

Every timeout a test gives (``asyncio.wait_for``, a deadline, a bounded wait) goes
through :func:`scaled`, so a slow machine can stretch them all at once with
``VISION_STREAM_TEST_TIMEOUT_FACTOR=3`` instead of editing tests (the idea of
websockets' ``tests/utils.py``: one ``MS`` unit scaled by an environment variable).
What a test *measures* (a paced replay's length, a rate) is never scaled.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

# Never below 1: a test's windows were chosen as the shortest that prove its point.
TIME_SCALE = max(1.0, float(os.environ.get("VISION_STREAM_TEST_TIMEOUT_FACTOR", "1") or "1"))


def scaled(seconds: float) -> float:
    """``seconds`` times the suite's time scale: use it for timeouts and observation windows."""
    return seconds * TIME_SCALE


async def until(predicate: Callable[[], bool], *, within: float, what: str = "the condition",
                every: float = 0.01, detail: Callable[[], object] | None = None) -> float:
    """Poll ``predicate`` every ``every`` s until it holds; returns the monotonic time it did.

    Fails with ``what`` (and ``detail()``, e.g. the last events) after ``scaled(within)`` s.
    """
    deadline = time.monotonic() + scaled(within)
    while not predicate():
        if time.monotonic() > deadline:
            extra = f"; {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {scaled(within):.1f} s waiting for {what}{extra}")
        await asyncio.sleep(every)
    return time.monotonic()
