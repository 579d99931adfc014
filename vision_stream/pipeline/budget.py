"""The budget governor: keep a session's token and dollar rate under its budget (pure).

Live bills the whole context again on every turn (LIVE_API.md "Cost"), so what
a session costs per hour is set by how many turns it asks for (the commentary
cadence) and how fast the context grows (frames per turn: the sampling rate,
scene-change frames). The governor watches the running rate per hour of MEDIA
time (so ``--fast`` and real time agree) and walks a ladder of cheaper
settings, one rung at a time:

  0. the session's own settings;
  1. half the frame rate (half the frames per turn);
  2. and a higher scene threshold (fewer scene-change frames and prompts);
  3. and twice the commentary interval (half the turns, each re-billing the context);
  4. a quarter of the frame rate and four times the interval.

Moving to REST snapshots would be the next rung; it needs a backend switch the
pipeline cannot yet make from here, so the ladder stops at 4.

Rates are smoothed: the rate of the last ``window`` media seconds (an EMA of
per-check rates), and the session's average so far. It steps DOWN when either
is above the budget, and back UP only when both are under ``resume`` x the
budget (hysteresis) and at least ``dwell`` media seconds passed since the last
change, so it does not flap. Each change is reported once by the caller, as a
retryable ``error`` event with code ``budget`` (the rate_limited precedent: a
degraded-but-working session, not a backend switch, which is what
``backend_changed`` means).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..config import SamplingPolicy

__all__ = ["LADDER", "BudgetChange", "BudgetGovernor", "Rung"]


@dataclass(frozen=True, slots=True)
class Rung:
    """One setting of the ladder, relative to the session's own."""

    name: str
    fps_factor: float = 1.0
    raise_scene_threshold: bool = False
    interval_factor: float = 1.0

    def sampling(self, base: SamplingPolicy) -> SamplingPolicy:
        threshold = base.scene_threshold
        if self.raise_scene_threshold:
            threshold = min(0.95, threshold + (1.0 - threshold) / 2)
        fps = max(0.05, base.fps * self.fps_factor)
        return base.updated(fps=fps, max_fps=max(fps, base.max_fps * self.fps_factor), scene_threshold=threshold)

    def interval(self, base: float) -> float:
        return min(3600.0, base * self.interval_factor)


LADDER = (
    Rung("the session's own settings"),
    Rung("half the frame rate", fps_factor=0.5),
    Rung("half the frame rate, higher scene threshold", fps_factor=0.5, raise_scene_threshold=True),
    Rung("half the frame rate, higher scene threshold, twice the commentary interval", fps_factor=0.5,
         raise_scene_threshold=True, interval_factor=2.0),
    Rung("a quarter of the frame rate, higher scene threshold, four times the commentary interval",
         fps_factor=0.25, raise_scene_threshold=True, interval_factor=4.0),
)


@dataclass(frozen=True, slots=True)
class BudgetChange:
    """A step of the ladder: the new settings and why (the event's message)."""

    level: int
    sampling: SamplingPolicy
    interval: float
    reason: str


class BudgetGovernor:
    """Decides the ladder level from the session's running usage (see the module docstring)."""

    def __init__(self, *, max_cost_per_hour: float = 0.0, max_tokens_per_hour: int = 0,
                 base_sampling: SamplingPolicy, base_interval: float, window: float = 60.0,
                 resume: float = 0.9, dwell: float | None = None) -> None:
        self.max_cost = max_cost_per_hour
        self.max_tokens = max_tokens_per_hour
        self.base_sampling = base_sampling
        self.base_interval = base_interval
        self.window = window
        self.resume = resume
        self.dwell = dwell if dwell is not None else max(6 * base_interval, 60.0)
        self.level = 0
        self.changes = 0
        self._samples: deque[tuple[float, int, float]] = deque()  # (media s, tokens, $) at each check
        self._changed_at = 0.0

    @property
    def active(self) -> bool:
        return self.max_cost > 0 or self.max_tokens > 0

    def _rates(self, media: float, tokens: int, cost: float) -> tuple[float, float, float, float]:
        """(recent tokens/h, recent $/h, average tokens/h, average $/h)."""
        self._samples.append((media, tokens, cost))
        while len(self._samples) > 2 and media - self._samples[1][0] >= self.window:
            self._samples.popleft()
        t0, k0, c0 = self._samples[0]
        span = media - t0
        recent = ((tokens - k0) * 3600 / span, (cost - c0) * 3600 / span) if span > 0 else (0.0, 0.0)
        average = (tokens * 3600 / media, cost * 3600 / media) if media > 0 else (0.0, 0.0)
        return recent[0], recent[1], average[0], average[1]

    def _load(self, tokens_h: float, cost_h: float) -> float:
        """The rate as a fraction of the budget (the tighter of the two limits)."""
        loads = []
        if self.max_cost > 0:
            loads.append(cost_h / self.max_cost)
        if self.max_tokens > 0:
            loads.append(tokens_h / self.max_tokens)
        return max(loads, default=0.0)

    def observe(self, media_seconds: float, tokens: int, cost_usd: float) -> BudgetChange | None:
        """The session's totals so far at ``media_seconds`` of media: a change, or None."""
        if not self.active or media_seconds <= 0:
            return None
        recent_t, recent_c, avg_t, avg_c = self._rates(media_seconds, tokens, cost_usd)
        # Report the rate that decided: the recent one when it is the higher load.
        recent_load, average_load = self._load(recent_t, recent_c), self._load(avg_t, avg_c)
        load = max(recent_load, average_load)
        rate_t, rate_c = (recent_t, recent_c) if recent_load >= average_load else (avg_t, avg_c)
        since = media_seconds - self._changed_at
        # Down: after at least one turn at the current rung (its effect shows); up: after ``dwell``.
        if load > 1.0 and self.level < len(LADDER) - 1 and since >= self.base_interval:
            return self._move(self.level + 1, media_seconds, rate_t, rate_c, "over")
        if load < self.resume and self.level > 0 and since >= self.dwell:
            return self._move(self.level - 1, media_seconds, rate_t, rate_c, "under")
        return None

    def _move(self, level: int, media: float, tokens_h: float, cost_h: float, why: str) -> BudgetChange:
        self.level, self._changed_at = level, media
        self.changes += 1
        self._samples.clear()  # the new settings' rate starts afresh
        rung = LADDER[level]
        limits = " and ".join(x for x in (f"${self.max_cost:g}/h" if self.max_cost > 0 else "",
                                            f"{self.max_tokens} tokens/h" if self.max_tokens > 0 else "") if x)
        direction = "over" if why == "over" else f"well under ({self.resume:.0%} of)"
        reason = (f"budget: running at ${cost_h:.2f}/h, {tokens_h:,.0f} tokens/h of media, {direction} {limits}; "
                  f"now {rung.name} (level {level}/{len(LADDER) - 1})")
        return BudgetChange(level, rung.sampling(self.base_sampling), rung.interval(self.base_interval), reason)
