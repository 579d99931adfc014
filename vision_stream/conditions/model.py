"""Watch conditions as values: what a session watches for, validated once.

A :class:`Condition` is the internal form of the proto's ``WatchCondition``
(and of a cameras-TOML ``[[cameras.conditions]]`` table, and of the CLI's
``--condition``). Built-in camera-health conditions (:mod:`.health`) are
``Condition`` values too, with ``builtin=True``, so one policy
(:mod:`.policy`) treats both alike.

Knows nothing about protobuf (``proto.py`` / ``server/convert.py`` convert).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import InvalidInputError, quote

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_MIN_CONFIDENCE",
    "MAX_CONDITIONS",
    "MAX_TEXT",
    "Condition",
    "HealthSettings",
    "check_conditions",
    "condition_from_mapping",
    "parse_condition_arg",
]

DEFAULT_COOLDOWN = 60.0  # seconds
DEFAULT_MIN_CONFIDENCE = 0.5
MAX_CONDITIONS = 16  # per session: each one costs prompt tokens on the model paths
MAX_TEXT = 500  # characters
MAX_COOLDOWN = 7 * 24 * 3600.0
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # as session ids
SEVERITIES = ("info", "low", "medium", "high")


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """One standing condition.

    cooldown: seconds (media time for model/analyzer verdicts, monotonic time
    for built-in health conditions) during which no new alert fires after one.
    until: wall time (seconds since the epoch) after which it is no longer
    watched; None: for the whole session. max_triggers: 0 = unlimited.
    """

    id: str
    text: str
    cooldown: float = DEFAULT_COOLDOWN
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    max_triggers: int = 0
    until: float | None = None
    verify: bool = False
    notify_resolved: bool = False
    severity: str = "medium"
    builtin: bool = False

    def __post_init__(self) -> None:
        where = f"conditions[{quote(self.id)}]" if _ID.fullmatch(self.id or "") else "conditions"
        if not _ID.fullmatch(self.id or ""):
            raise InvalidInputError(
                f"conditions: id must be 1-64 letters, digits, '.', '_' or '-', got {quote(self.id)}")
        text = " ".join(self.text.split())
        if not text:
            raise InvalidInputError(f"{where}.text is empty: say the condition in words")
        if len(text) > MAX_TEXT:
            raise InvalidInputError(f"{where}.text is {len(text)} characters; at most {MAX_TEXT}")
        object.__setattr__(self, "text", text)
        if not (math.isfinite(self.cooldown) and 0 <= self.cooldown <= MAX_COOLDOWN):
            raise InvalidInputError(f"{where}.cooldown must be in [0, {MAX_COOLDOWN:.0f}] seconds, got {self.cooldown}")
        if not (math.isfinite(self.min_confidence) and 0 <= self.min_confidence <= 1):
            raise InvalidInputError(f"{where}.min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.max_triggers < 0:
            raise InvalidInputError(f"{where}.max_triggers must be >= 0 (0: unlimited), got {self.max_triggers}")
        if self.until is not None and not math.isfinite(self.until):
            raise InvalidInputError(f"{where}.until is not a time")
        if self.severity not in SEVERITIES:
            raise InvalidInputError(
                f"{where}.severity must be one of {', '.join(SEVERITIES)}, got {quote(self.severity)}")


def check_conditions(conditions: Iterable[Condition]) -> tuple[Condition, ...]:
    """A session's whole set: at most :data:`MAX_CONDITIONS`, ids unique."""
    items = tuple(conditions)
    if len(items) > MAX_CONDITIONS:
        raise InvalidInputError(f"conditions holds {len(items)} entries; at most {MAX_CONDITIONS} per session")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InvalidInputError(f"conditions: id {quote(item.id)} is given twice")
        seen.add(item.id)
    return items


def default_id(text: str, index: int) -> str:
    """An id for a condition given without one: its first words, slugged (``c1`` when none fit)."""
    words = re.findall(r"[A-Za-z0-9]+", text.lower())[:4]
    slug = "-".join(words)[:48]
    return slug or f"c{index + 1}"


_KEYS = {"id", "text", "cooldown", "min_confidence", "max_triggers", "until", "verify", "notify_resolved", "severity"}


def condition_from_mapping(item: Mapping[str, object], index: int, where: str = "conditions") -> Condition:
    """A condition from a TOML table / JSON object (cameras file, HTTP): keys as the proto's,
    ``cooldown`` in seconds, ``until`` in seconds since the epoch."""
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise InvalidInputError(f"{where}[{index}]: unknown key {quote(unknown[0])}; keys: {', '.join(sorted(_KEYS))}")
    text = item.get("text")
    if not isinstance(text, str):
        raise InvalidInputError(f"{where}[{index}].text must be a string")
    kwargs: dict[str, object] = {"id": item.get("id") or default_id(text, index), "text": text}
    for key, kind in (("cooldown", float), ("min_confidence", float), ("max_triggers", int), ("until", float),
                      ("verify", bool), ("notify_resolved", bool), ("severity", str)):
        if key in item:
            value = item[key]
            ok = isinstance(value, kind) or (kind is float and isinstance(value, int) and not isinstance(value, bool))
            if not ok or (kind is int and isinstance(value, bool)):
                raise InvalidInputError(f"{where}[{index}].{key} must be {kind.__name__}, got {quote(value)}")
            kwargs[key] = float(value) if kind is float else value  # type: ignore[arg-type]
    if not isinstance(kwargs["id"], str):
        raise InvalidInputError(f"{where}[{index}].id must be a string")
    try:
        return Condition(**kwargs)  # type: ignore[arg-type]
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}[{index}]: {exc.message}") from exc


def parse_condition_arg(arg: str, index: int = 0) -> Condition:
    """The CLI's ``--condition``: ``"TEXT"`` or ``"key=value;...;TEXT"``.

    Leading ``key=value`` items separated by ``;`` set ``id``, ``cooldown`` (seconds),
    ``min_confidence``, ``max_triggers``, ``verify`` / ``notify_resolved``
    (``1``/``true``/``yes``) and ``severity``; what follows the last one is the text:
    ``--condition "id=door;cooldown=30;notify_resolved=1;a person in the left half"``.
    """
    parts = arg.split(";")
    item: dict[str, object] = {}
    while len(parts) > 1 and re.fullmatch(r"\s*[a-z_]+\s*=.*", parts[0]) and parts[0].split("=", 1)[0].strip() in _KEYS:
        key, _, value = parts.pop(0).partition("=")
        key, value = key.strip(), value.strip()
        item[key] = _arg_value(key, value, index)
    item["text"] = ";".join(parts).strip()
    return condition_from_mapping(item, index, where="--condition")


def _arg_value(key: str, value: str, index: int) -> object:
    try:
        if key in ("cooldown", "min_confidence", "until"):
            return float(value)
        if key == "max_triggers":
            return int(value)
    except ValueError:
        raise InvalidInputError(f"--condition[{index}].{key} is not a number: {quote(value)}") from None
    if key in ("verify", "notify_resolved"):
        return value.lower() in ("1", "true", "yes", "on")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSettings:
    """Built-in camera-health conditions (:mod:`.health`); times in seconds.

    enabled: None = on for live sources (cameras), off for files and pushed media.
    A threshold of 0 turns that condition off; fps_min/fps_max 0: no bound.
    """

    enabled: bool | None = None
    no_frames_after: float = 10.0
    reconnecting_after: float = 10.0
    fps_min: float = 0.0
    fps_max: float = 0.0
    backend_down: bool = True
    budget_exhausted: bool = True

    def __post_init__(self) -> None:
        for name in ("no_frames_after", "reconnecting_after", "fps_min", "fps_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"health.{name} must be >= 0, got {value}")
        if self.fps_max and self.fps_min > self.fps_max:
            raise InvalidInputError(f"health.fps_min ({self.fps_min}) is above health.fps_max ({self.fps_max})")
