"""How the emulators judge watch conditions: the offline analyzer's signals over the JPEGs received.

A real model reads the conditions as words ("- [id] text" lines in its
instructions, ``backends/prompts.py``); the emulators read the same lines and
judge those the offline grammar understands (``conditions/offline.py``:
motion or people/faces/vehicles in a named zone, scene cuts, darkness) from
the pictures they were actually sent, so the whole path (declaration,
``report_condition`` / structured output, frame ids, alerts) runs on real
footage. A condition the grammar cannot judge gets no verdict (a model that
is unsure says nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..analysis.describe import decode_jpeg
from ..analysis.video import VideoAnalyzer
from ..conditions.model import Condition
from ..conditions.offline import OfflineJudge
from ..errors import InvalidInputError
from ..events import ConditionVerdict

__all__ = ["SignalJudge"]


class SignalJudge:
    """One emulated session's judge: the analyzer keeps its state (motion needs the frame
    before) from one batch of pictures to the next."""

    def __init__(self) -> None:
        self._analyzer = VideoAnalyzer()
        self._clock = 0.0

    def judge(self, jpegs: Sequence[bytes], conditions: Mapping[str, str]) -> dict[str, ConditionVerdict]:
        """Per judgeable condition (id -> text): met if any picture shows it (the most confident
        such picture's evidence, naming it), else not met. Blocking: call from a thread."""
        judge = OfflineJudge(_conditions(conditions))
        if not judge.rules:
            return {}
        found: dict[str, ConditionVerdict] = {}
        for index, data in enumerate(jpegs):
            image = decode_jpeg(data)
            if image is None or image.size == 0:
                continue
            report = self._analyzer.process(image, self._clock)
            self._clock += 1.0
            for verdict in judge.frame(report):
                best = found.get(verdict.condition_id)
                if verdict.met and (best is None or not best.met or verdict.confidence > best.confidence):
                    evidence = f"{verdict.evidence} (picture {index + 1} of {len(jpegs)})"
                    found[verdict.condition_id] = ConditionVerdict(verdict.condition_id, True, verdict.confidence,
                                                                    evidence, verdict.backend)
                elif best is None:
                    found[verdict.condition_id] = verdict
        return found


def _conditions(conditions: Mapping[str, str]) -> list[Condition]:
    out = []
    for cid, text in conditions.items():
        try:
            out.append(Condition(id=cid, text=text))
        except InvalidInputError:
            continue  # not a condition this judge can hold: no verdict
    return out
