"""Built-in camera-health conditions: the session's own verdicts about itself (pure, time passed in).

=================  =========================================================  resolves when
id                 holds when
=================  =========================================================  =================
no_frames          no frame arrived for ``no_frames_after`` seconds           a frame arrives
reconnecting       the source has been reconnecting ``reconnecting_after`` s  it streams again
fps_range          source frames per second over the last 5 s outside          back inside
                   [fps_min, fps_max] (checked once 5 s of the session ran)
backend_down       the model backend failed over to the offline analyzer     a model link is back
budget_exhausted   the budget governor says the spending bound is reached     it says otherwise
=================  =========================================================  =================

Each is a :class:`~vision_stream.conditions.model.Condition` with ``builtin=True``,
``notify_resolved=True`` and no cooldown (an outage alerts once, however long;
each new outage alerts again). Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

from collections import deque

from ..events import ConditionVerdict
from .model import Condition, HealthSettings

__all__ = ["FPS_WINDOW", "HealthMonitor", "health_conditions"]

FPS_WINDOW = 5.0  # seconds of source frames the fps condition looks at
MODEL_BACKENDS = ("live", "rest")
BACKEND = "pipeline"


def health_conditions(settings: HealthSettings) -> tuple[Condition, ...]:
    """The built-in conditions ``settings`` turns on."""
    def make(cid: str, text: str) -> Condition:
        return Condition(id=cid, text=text, cooldown=0.0, min_confidence=0.0, notify_resolved=True,
                         severity="high", builtin=True)

    out = []
    if settings.no_frames_after:
        out.append(make("no_frames", f"no frames for {settings.no_frames_after:g} s"))
    if settings.reconnecting_after:
        out.append(make("reconnecting", f"camera reconnecting for {settings.reconnecting_after:g} s"))
    if settings.fps_min or settings.fps_max:
        upper = f"{settings.fps_max:g}" if settings.fps_max else "any"
        out.append(make("fps_range", f"source fps outside {settings.fps_min:g}..{upper}"))
    if settings.backend_down:
        out.append(make("backend_down", "the model backend is down (offline analysis only)"))
    if settings.budget_exhausted:
        out.append(make("budget_exhausted", "the spending budget is exhausted"))
    return tuple(out)


class HealthMonitor:
    """Turns what the pipeline observes into verdicts for :func:`health_conditions`."""

    def __init__(self, settings: HealthSettings, *, now: float) -> None:
        self.settings = settings
        self._started = now
        self._last_frame = now
        self._reconnecting_since: float | None = None
        self._frames_in: deque[tuple[float, int]] = deque(maxlen=64)  # (time, frames_in) samples

    def frame(self, now: float) -> list[ConditionVerdict]:
        """A frame arrived: no_frames no longer holds."""
        gap = now - self._last_frame
        self._last_frame = now
        if not self.settings.no_frames_after:
            return []
        return [ConditionVerdict("no_frames", False, 1.0, f"frames again after {gap:.1f} s", BACKEND)]

    def source_state(self, state: str, now: float) -> list[ConditionVerdict]:
        """A live source's connection state ("connecting", "streaming", "reconnecting", "failed")."""
        if state in ("reconnecting", "failed"):
            if self._reconnecting_since is None:
                self._reconnecting_since = now
            return []
        if state == "streaming" and self._reconnecting_since is not None:
            outage = now - self._reconnecting_since
            self._reconnecting_since = None
            return [ConditionVerdict("reconnecting", False, 1.0, f"streaming again after {outage:.1f} s", BACKEND)]
        return []

    def backend_changed(self, to_backend: str, reason: str) -> list[ConditionVerdict]:
        """The failover chain switched links: down when only the offline analyzer is left."""
        if to_backend in MODEL_BACKENDS:
            return [ConditionVerdict("backend_down", False, 1.0, f"{to_backend} backend is back", BACKEND)]
        return [ConditionVerdict("backend_down", True, 1.0, f"now {to_backend or 'no backend'}: {reason}", BACKEND)]

    def budget(self, exhausted: bool, reason: str) -> list[ConditionVerdict]:
        return [ConditionVerdict("budget_exhausted", exhausted, 1.0, reason, BACKEND)]

    def tick(self, now: float, frames_in: int) -> list[ConditionVerdict]:
        """Periodic check (about once a second): the conditions that hold by the passing of time."""
        out: list[ConditionVerdict] = []
        s = self.settings
        silent = now - self._last_frame
        if s.no_frames_after and silent >= s.no_frames_after:
            out.append(ConditionVerdict("no_frames", True, 1.0, f"no frames for {silent:.1f} s", BACKEND))
        since = self._reconnecting_since
        if s.reconnecting_after and since is not None and now - since >= s.reconnecting_after:
            out.append(ConditionVerdict("reconnecting", True, 1.0,
                                        f"reconnecting for {now - since:.1f} s", BACKEND))
        out.extend(self._fps(now, frames_in))
        return out

    def _fps(self, now: float, frames_in: int) -> list[ConditionVerdict]:
        s = self.settings
        self._frames_in.append((now, frames_in))
        while len(self._frames_in) > 2 and now - self._frames_in[1][0] >= FPS_WINDOW:
            self._frames_in.popleft()
        if not (s.fps_min or s.fps_max) or now - self._started < FPS_WINDOW:
            return []
        t0, n0 = self._frames_in[0]
        if now - t0 <= 0:
            return []
        fps = (frames_in - n0) / (now - t0)
        outside = fps < s.fps_min or (s.fps_max > 0 and fps > s.fps_max)
        return [ConditionVerdict("fps_range", outside, 1.0, f"source at {fps:.1f} fps", BACKEND)]
