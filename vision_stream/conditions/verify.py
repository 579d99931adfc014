"""A second opinion before an alert fires (issue 12 item 2): ``verify: true`` conditions.

A FIRED candidate (from Live, REST or the offline analyzer) of a condition
with ``verify`` set is checked by one REST ``generateContent`` request
before its alert goes out: more frames than the candidate named (the newest
:data:`VERIFY_FRAMES` of the session's evidence ring up to the candidate's
newest frame, the JPEGs exactly as sampled), asked at
``MEDIA_RESOLUTION_HIGH`` (more tokens per picture than the commentary's
default), with the structured-output schema for that one condition
(conditions/rest.py), optionally on another model (``verify_model``).

* confirmed (met, confidence >= the condition's min_confidence): the alert
  fires carrying both verdicts (the candidate's, and the second opinion in
  ``verification``) and the latency the check added;
* rejected (not met, or not sure enough): no alert; the engine counts it
  (``Stats.alert_candidates_rejected``) and the episode is not asked about again;
* no answer (no key: no verifier is made; the request failed, was blocked or
  was not the JSON asked for): the alert fires marked unverified
  (``requested`` true, ``confirmed`` false, ``evidence`` saying why) - a
  broken second opinion never silences an alert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..backends.prompts import verify_prompt
from ..errors import BackendError
from ..events import ConditionVerdict, Verification
from .model import Condition
from .rest import parse_answer, response_schema

if TYPE_CHECKING:
    from ..backends.factory import BackendOptions
    from ..backends.gemini_rest.client import RestClient
    from ..pipeline.frame_ring import FrameRing, RingFrame

__all__ = ["VERIFY_FRAMES", "RestVerifier", "rest_verifier"]

VERIFY_FRAMES = 8  # pictures a second opinion looks at
VERIFY_RESOLUTION = "MEDIA_RESOLUTION_HIGH"
VERIFY_INSTRUCTION = ("You are a careful second observer checking another observer's claim about a video stream. "
                      "Judge only from what the pictures show; when unsure, say the condition is not met.")


class RestVerifier:
    """The :class:`~vision_stream.conditions.engine.Verifier` of one session (its evidence ring)."""

    def __init__(self, frames: FrameRing, client_factory: Callable[[], RestClient], model: str, *,
                 count: int = VERIFY_FRAMES) -> None:
        self._frames = frames
        self._client_factory = client_factory
        self.model = model
        self._count = count

    def pick(self, frame_ids: tuple[int, ...]) -> list[RingFrame]:
        """The newest ``count`` ring frames up to the candidate's newest frame (all of the
        ring's newest when the candidate named none), oldest first."""
        held = self._frames.span(float("-inf"), float("inf"))
        if frame_ids:
            held = [f for f in held if f.frame_id <= max(frame_ids)]
        return held[-self._count:]

    async def verify(self, condition: Condition, verdict: ConditionVerdict,
                     frame_ids: tuple[int, ...]) -> Verification:
        start = time.monotonic()
        picked = self.pick(frame_ids)
        if not picked:
            return _unanswered("no frames to show (the evidence ring is empty)", self.model, start)
        from ..backends.gemini_rest.messages import ImagePart, build_request

        body = build_request([ImagePart(f.jpeg, f.media_time) for f in picked],
                             verify_prompt(condition, [f.media_time for f in picked]),
                             system_instruction=VERIFY_INSTRUCTION, media_resolution=VERIFY_RESOLUTION,
                             response_schema=response_schema([condition], commentary=False))
        client = self._client_factory()
        try:
            reply = await client.generate(self.model, body, stream=False)
        except BackendError as exc:
            return _unanswered(f"the second opinion failed: {exc.message[:200]}", self.model, start)
        finally:
            await client.aclose()
        if reply.blocked:
            return _unanswered(f"the second opinion was withheld: {reply.block_message()[:200]}", self.model, start)
        try:
            answer = parse_answer(reply.text, [condition], "rest", tuple(f.frame_id for f in picked))
        except ValueError as exc:
            return _unanswered(f"the second opinion was unusable: {exc}", self.model, start)
        if not answer.verdicts:
            return _unanswered("the second opinion did not judge the condition", self.model, start)
        second = answer.verdicts[0]
        return Verification(requested=True, confirmed=second.met and second.confidence >= condition.min_confidence,
                            confidence=round(second.confidence, 3), evidence=second.evidence, backend="rest",
                            model=self.model, latency_seconds=round(time.monotonic() - start, 3))


def _unanswered(why: str, model: str, start: float) -> Verification:
    """No second opinion: ``backend`` empty, so the engine fires the alert marked unverified."""
    return Verification(requested=True, confirmed=False, evidence=why, model=model,
                        latency_seconds=round(time.monotonic() - start, 3))


def rest_verifier(options: BackendOptions, frames: FrameRing) -> RestVerifier | None:
    """The verifier for a session with these backend options; None without an API key
    (alerts of ``verify`` conditions then fire marked unverified)."""
    if options.api_key is None or not options.api_key.reveal():
        return None
    from ..backends.factory import make_rest_backend

    backend = make_rest_backend(options)
    return RestVerifier(frames, backend.client, options.verify_model or options.snapshot_model)
