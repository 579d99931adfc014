"""When a session asks its backend for commentary: the cadence policy, on media time.

Pure and clock-free: :class:`CommentaryCadence` sees the media time and the
sampler's reason of each frame sent, and answers which prompt (if any) is due,
so paced and ``--fast`` replays prompt at the same points.

Rules:

- *cadence*: one prompt every ``interval`` media seconds, counted from the
  first frame; intervals missed in a gap (a stalled camera, a slow backend in
  latest-wins mode) are skipped, never caught up in a burst;
- *scene*: a frame sampled for a scene change prompts at once, unless the
  previous prompt of this policy was less than ``min_scene_gap`` media seconds
  ago (the next cadence prompt will cover the change).
"""

from __future__ import annotations

__all__ = ["MIN_SCENE_PROMPT_GAP", "CommentaryCadence"]

# Scene-change prompts closer than this (media seconds) to the previous prompt
# are skipped: the next cadence prompt will cover the change.
MIN_SCENE_PROMPT_GAP = 2.0


class CommentaryCadence:
    """Decides the cadence and scene prompts of one session (see the module docstring)."""

    def __init__(self, interval: float, *, min_scene_gap: float = MIN_SCENE_PROMPT_GAP) -> None:
        self.interval = interval  # media seconds between cadence prompts
        self.min_scene_gap = min_scene_gap
        self._next_at: float | None = None  # media time of the next cadence prompt
        self._last_prompt_at: float | None = None  # media time of this policy's last prompt

    def on_frame(self, media_time: float, reason: str) -> str | None:
        """A frame sampled for ``reason`` ("cadence" or "scene") was sent at
        ``media_time``: the prompt now due ("cadence", "scene") or None."""
        t = media_time
        if self._next_at is None:
            self._next_at = t + self.interval
        if t >= self._next_at:
            # Skip whole missed intervals rather than prompting in a burst.
            missed = int((t - self._next_at) // self.interval)
            self._next_at += (missed + 1) * self.interval
            self._last_prompt_at = t
            return "cadence"
        if reason == "scene" and (self._last_prompt_at is None or t - self._last_prompt_at >= self.min_scene_gap):
            self._last_prompt_at = t
            return "scene"
        return None
