"""The emulators' token model: realistic ``usageMetadata``, so cost and budgets are testable.

What Google publishes (LIVE_API.md "Cost") and this model follows:

- a frame costs 64 tokens at ``MEDIA_RESOLUTION_LOW``; at medium/default (and,
  here, high) 258 tokens per 768x768 tile, so a frame bigger than 768 px costs
  more tiles (the recorded REST image of 3008x2000 billed 3,354 = 13 tiles);
- audio in costs 32 tokens a second; text about one token per 4 characters;
- spoken answers cost output AUDIO tokens (32 a second of speech, at 2.5 words
  a second), and join the context like any input;
- Live bills the whole accumulated context again on every turn: each turn's
  ``promptTokenCount`` is the system instruction plus everything in context
  (frames, audio, prompts, earlier answers). Context grows until it passes the
  compression trigger (``contextWindowCompression.triggerTokens``, else the
  131,072-token window), then the sliding window drops the oldest entries down
  to ``slidingWindow.targetTokens`` (emulator choice when absent: half the
  trigger). Without compression the context is never cut.

Pure bookkeeping, no I/O; the emulators feed it what they received.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The one token estimator lives in vision_stream/usage.py (the budget governor predicts with it).
from ..usage import AUDIO_TOKENS_PER_SECOND, image_tokens, jpeg_tokens, text_tokens

__all__ = ["CONTEXT_WINDOW", "ContextMeter", "image_tokens", "jpeg_tokens", "text_tokens"]

SPOKEN_WORDS_PER_SECOND = 2.5
CONTEXT_WINDOW = 131_072


def _int(value: Any, default: int) -> int:
    try:
        return int(value)  # int64 arrives as a string (proto3 JSON)
    except (TypeError, ValueError):
        return default


@dataclass
class ContextMeter:
    """One emulated session's context, by modality, oldest first (survives reconnects)."""

    trigger: int | None = CONTEXT_WINDOW  # None: no compression, the context is never cut
    target: int = CONTEXT_WINDOW // 2
    system: int = 0  # system instruction + declarations: always in context
    entries: deque[tuple[str, int]] = field(default_factory=deque)
    total: int = 0  # tokens in ``entries``
    _audio_carry: float = 0.0

    @classmethod
    def from_setup(cls, setup: Mapping[str, Any]) -> ContextMeter:
        """The window the client asked for in ``setup`` (absent compression: unbounded)."""
        system = text_tokens(str(setup.get("systemInstruction") or "")) + text_tokens(str(setup.get("tools") or ""))
        compression = setup.get("contextWindowCompression")
        if compression is None:
            return cls(trigger=None, system=system)
        trigger = _int(compression.get("triggerTokens"), CONTEXT_WINDOW)
        window = compression.get("slidingWindow") or {}
        target = min(trigger, _int(window.get("targetTokens"), trigger // 2))
        return cls(trigger=trigger, target=target, system=system)

    def add(self, modality: str, tokens: int) -> None:
        """New input in context (``TEXT``, ``AUDIO``, ``VIDEO``)."""
        if tokens > 0:
            self.entries.append((modality, tokens))
            self.total += tokens

    def add_audio(self, seconds: float) -> None:
        """Audio input at 32 tokens a second (chunks of 20-100 ms: fractions carried over)."""
        self._audio_carry += seconds * AUDIO_TOKENS_PER_SECOND
        whole = int(self._audio_carry)
        self._audio_carry -= whole
        self.add("AUDIO", whole)

    def turn(self, answer: str, *, spoken: bool = True) -> dict[str, Any]:
        """The ``usageMetadata`` of a turn answering ``answer``: the whole context billed
        again, then the answer joins it and the sliding window cuts if past its trigger."""
        by_modality: dict[str, int] = {"TEXT": self.system}
        for modality, tokens in self.entries:
            by_modality[modality] = by_modality.get(modality, 0) + tokens
        prompt = self.system + self.total
        if spoken:
            seconds = len(answer.split()) / SPOKEN_WORDS_PER_SECOND
            response, out_modality = max(1, round(seconds * AUDIO_TOKENS_PER_SECOND)), "AUDIO"
        else:
            response, out_modality = max(1, text_tokens(answer)), "TEXT"
        self.add(out_modality, response)
        self._compress()
        return {
            "promptTokenCount": prompt,
            "responseTokenCount": response,
            "totalTokenCount": prompt + response,
            "promptTokensDetails": [{"modality": m, "tokenCount": t} for m, t in by_modality.items() if t],
            "responseTokensDetails": [{"modality": out_modality, "tokenCount": response}],
        }

    def _compress(self) -> None:
        if self.trigger is None or self.system + self.total <= self.trigger:
            return
        while self.entries and self.system + self.total > self.target:
            _, tokens = self.entries.popleft()
            self.total -= tokens
