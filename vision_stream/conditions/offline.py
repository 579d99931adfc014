"""The conditions the offline analyzer can really judge, recognised from their words.

The grammar is small and explicit (case-insensitive; the first rule that
matches wins; anything else cannot be evaluated offline)::

    condition := negated | audio | no_frames | scene | dark | object [zone] | motion [zone]
                 (object/motion with any other place word - "at", "near", "on", "in", "through",
                 "behind", ... - outside the zone phrase: cannot evaluate, e.g. "a person at the door")
    negated   := any text with "not", "no ", "n't", "without", "empty" (except "no frames")
                 -> cannot evaluate (absence claims need a model)
    audio     := "audio" | "sound" | "noise" | "speaks" | "speaking" | "talks" | "talking" | "voice"
    no_frames := "no frames" | "no video" | "camera is silent" ["for N s"]   (default 10 s)
    scene     := "scene cut" | "scene change" | "cut to"
    dark      := "dark" | "darkness" | "lights off" | "lights are off" | "lights go out"
    object    := "person" | "people" | "someone" | "man" | "woman" | "face"
                 | "vehicle" | "car" | "truck" | "bus" | "van"
    motion    := "motion" | "movement" | "moving" | "moves" | "something enters"
    zone      := "zone=X,Y,W,H" (fractions of the frame, top-left origin)
                 | "left half" | "right half" | "top half" | "upper half" | "bottom half" | "lower half"
                 | "top-left quarter" | "top-right quarter" | "bottom-left quarter" | "bottom-right quarter"
                   ("upper"/"lower" for "top"/"bottom"; "-" or " " between)
                 | "centre" | "center" | "middle"          (the middle half of each side)
                 no zone: the whole frame

Examples: "motion in the left half", "a vehicle in the left half", "a car enters
the top-left quarter", "a person zone=0.1,0.5,0.3,0.5", "a scene cut",
"the lights are off", "someone speaks".

:class:`OfflineJudge` turns the analyzer's per-frame :class:`FrameReport` and
per-chunk :class:`AudioReport` into :class:`ConditionVerdict` values (pure, no I/O).
"no frames" is judged by the pipeline's clock (:mod:`.engine`), whatever the backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..analysis.audio import AudioReport
from ..analysis.video import UNDER_LUMA, FrameReport
from ..events import ConditionVerdict, Region
from .model import Condition

__all__ = ["DEFAULT_NO_FRAMES", "OfflineJudge", "Rule", "parse_rule", "zone_of"]

BACKEND = "local"
DEFAULT_NO_FRAMES = 10.0  # seconds without frames a "no frames" condition means by default
ZONE_MOTION = 0.003  # moving share of the whole frame, inside the zone, that counts as motion there
WHOLE = Region(0.0, 0.0, 1.0, 1.0)

_HALVES = {
    "left": Region(0.0, 0.0, 0.5, 1.0), "right": Region(0.5, 0.0, 0.5, 1.0),
    "top": Region(0.0, 0.0, 1.0, 0.5), "bottom": Region(0.0, 0.5, 1.0, 0.5),
}
_VERTICAL = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_NEGATED = re.compile(r"\b(not|no|without|empty|nobody|nothing)\b|n't\b")
_AUDIO = re.compile(r"\b(audio|sound|sounds|noise|noisy|speaks|speaking|talks|talking|voice|voices)\b")
_NO_FRAMES = re.compile(r"\bno (frames|video)\b|\bcamera (is |goes )?silent\b")
_SECONDS = re.compile(r"\bfor (\d+(?:\.\d+)?) ?(s|sec|secs|seconds?)\b")
_SCENE = re.compile(r"\bscene (cut|change|changes)\b|\bcut to\b")
_DARK = re.compile(r"\b(dark|darkness|lights (are |go |turn )?(off|out))\b")
_OBJECTS = (
    ("person", re.compile(r"\b(person|people|someone|somebody|man|woman|men|women)\b")),
    ("face", re.compile(r"\bfaces?\b")),
    ("vehicle", re.compile(r"\b(vehicles?|cars?|trucks?|bus|buses|vans?)\b")),
)
_MOTION = re.compile(r"\b(motion|movement|moving|moves|something enters)\b")
_ZONE_EXPLICIT = re.compile(r"\bzone\s*=\s*([0-9.]+)\s*,\s*([0-9.]+)\s*,\s*([0-9.]+)\s*,\s*([0-9.]+)")
_QUARTER = re.compile(r"\b(top|upper|bottom|lower)[- ](left|right) quarter\b")
_HALF = re.compile(r"\b(left|right|top|upper|bottom|lower) half\b")
_CENTRE = re.compile(r"\b(centre|center|middle)\b")
# A preposition (and "the") just before a zone phrase belongs to it.
_LEAD = re.compile(r"\b(in|into|on|at|to|within|inside|enters|entering)?\s*(the\s+)?(of\s+the\s+)?$")
# Words that place the subject somewhere other than a zone of the picture.
_PLACE = re.compile(r"\b(at|near|on|by|in|inside|outside|through|into|behind|under|over|beside|next to)\b")


@dataclass(frozen=True, slots=True)
class Rule:
    """What a condition means to the offline analyzer.

    kind: "motion", "object", "scene_cut", "dark", "audio" or "no_frames";
    label: the object's label (:mod:`vision_stream.analysis.objects`); zone: where
    (the whole frame when not said); seconds: the "no frames" span.
    """

    kind: str
    label: str = ""
    zone: Region = WHOLE
    zone_name: str = "the frame"
    seconds: float = DEFAULT_NO_FRAMES


def zone_of(text: str) -> tuple[Region, str] | None:
    """The zone a condition names, with its words; None when it names none.
    A malformed explicit zone is no zone (the condition then cannot be evaluated)."""
    lowered = text.lower()
    explicit = _ZONE_EXPLICIT.search(lowered)
    if explicit:
        try:
            x, y, w, h = (float(v) for v in explicit.groups())
        except ValueError:
            return None
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x + 1e-9 and 0 < h <= 1 - y + 1e-9):
            return None
        return Region(x, y, w, h), f"zone {x:g},{y:g},{w:g},{h:g}"
    quarter = _QUARTER.search(lowered)
    if quarter:
        vertical, side = _VERTICAL[quarter.group(1)], quarter.group(2)
        return (Region(0.0 if side == "left" else 0.5, 0.0 if vertical == "top" else 0.5, 0.5, 0.5),
                f"the {vertical}-{side} quarter")
    half = _HALF.search(lowered)
    if half:
        name = _VERTICAL.get(half.group(1), half.group(1))
        return _HALVES[name], f"the {name} half"
    if _CENTRE.search(lowered):
        return Region(0.25, 0.25, 0.5, 0.5), "the centre"
    return None


def parse_rule(text: str) -> Rule | None:
    """The rule a condition's words match (see the module docstring), or None: cannot evaluate."""
    lowered = " ".join(text.lower().split())
    if _NO_FRAMES.search(lowered):
        seconds = _SECONDS.search(lowered)
        return Rule("no_frames", seconds=float(seconds.group(1)) if seconds else DEFAULT_NO_FRAMES)
    if _NEGATED.search(lowered):
        return None
    if _AUDIO.search(lowered):
        return Rule("audio")
    if _SCENE.search(lowered):
        return Rule("scene_cut")
    if _DARK.search(lowered):
        return Rule("dark")
    zone = zone_of(lowered)
    if "zone" in lowered and zone is None:
        return None  # a zone was meant but not understood: do not widen it to the whole frame
    if _PLACE.search(_without_zone(lowered)):
        return None  # a place the analyzer cannot see ("at the front door"): judging the whole frame would lie
    region, zone_name = zone if zone is not None else (WHOLE, "the frame")
    for label, pattern in _OBJECTS:
        if pattern.search(lowered):
            return Rule("object", label=label, zone=region, zone_name=zone_name)
    if _MOTION.search(lowered) or zone is not None:
        return Rule("motion", zone=region, zone_name=zone_name)
    return None


def _without_zone(text: str) -> str:
    """The text with its zone phrase (and the preposition before it) taken out."""
    for pattern in (_ZONE_EXPLICIT, _QUARTER, _HALF, _CENTRE):
        match = pattern.search(text)
        if match:
            head = _LEAD.sub("", text[: match.start()])
            return head + " " + text[match.end():]
    return text


def _intersection(a: Region, b: Region) -> float:
    """Area of the overlap of two boxes, as a fraction of the frame."""
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    return max(0.0, w) * max(0.0, h)


def _centre_in(box: Region, zone: Region) -> bool:
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    return zone.x <= cx <= zone.x + zone.width and zone.y <= cy <= zone.y + zone.height


class OfflineJudge:
    """The offline verdicts for a session's conditions (those :func:`parse_rule` understands)."""

    def __init__(self, conditions: Iterable[Condition] = ()) -> None:
        self.rules: dict[str, Rule] = {}
        self.unsupported: tuple[Condition, ...] = ()
        self.replace(conditions)

    def replace(self, conditions: Iterable[Condition]) -> None:
        rules: dict[str, Rule] = {}
        unsupported: list[Condition] = []
        for condition in conditions:
            if condition.builtin:
                continue
            rule = parse_rule(condition.text)
            if rule is None:
                unsupported.append(condition)
            elif rule.kind != "no_frames":  # the pipeline's clock judges that one
                rules[condition.id] = rule
        self.rules, self.unsupported = rules, tuple(unsupported)

    def frame(self, report: FrameReport) -> list[ConditionVerdict]:
        """Verdicts for the video conditions at one analysed frame."""
        out = []
        for cid, rule in self.rules.items():
            verdict = _judge_frame(cid, rule, report)
            if verdict is not None:
                out.append(verdict)
        return out

    def audio(self, report: AudioReport) -> list[ConditionVerdict]:
        """Verdicts for the audio conditions at one chunk."""
        return [
            ConditionVerdict(cid, report.active, 0.9 if report.active else 1.0,
                             f"audio at {report.level:.0f} dBFS" if report.active else "", BACKEND)
            for cid, rule in self.rules.items() if rule.kind == "audio"
        ]


def _judge_frame(cid: str, rule: Rule, report: FrameReport) -> ConditionVerdict | None:
    if rule.kind == "motion":
        moving = sum(_intersection(r, rule.zone) for r in report.motion.regions)
        met = moving >= ZONE_MOTION and not report.is_cut
        evidence = f"motion over {moving * 100:.1f}% of the frame in {rule.zone_name}" if met else ""
        return ConditionVerdict(cid, met, round(min(1.0, 0.5 + moving * 25), 3) if met else 1.0, evidence, BACKEND)
    if rule.kind == "object":
        found = [f for f in report.objects if f.label == rule.label and _centre_in(f.box, rule.zone)]
        if not found:
            return ConditionVerdict(cid, False, 1.0, "", BACKEND)
        best = max(found, key=lambda f: f.confidence)
        b = best.box
        evidence = (f"{'a' if len(found) == 1 else len(found)} {rule.label}{'s' if len(found) > 1 else ''} in "
                    f"{rule.zone_name} (box {b.x:.2f},{b.y:.2f},{b.width:.2f},{b.height:.2f})")
        return ConditionVerdict(cid, True, best.confidence, evidence, BACKEND)
    if rule.kind == "scene_cut":
        cut = report.cut
        if report.is_cut and cut is not None:
            return ConditionVerdict(cid, True, round(cut.confidence, 3), "scene cut", BACKEND)
        return ConditionVerdict(cid, False, 1.0, "", BACKEND)
    if rule.kind == "dark":
        met = report.exposure == "underexposed" or report.luma < UNDER_LUMA
        evidence = f"mean brightness {report.luma:.0f}/255" if met else ""
        return ConditionVerdict(cid, met, round(min(1.0, 0.6 + (UNDER_LUMA - report.luma) / 100), 3) if met else 1.0,
                                evidence, BACKEND)
    return None
