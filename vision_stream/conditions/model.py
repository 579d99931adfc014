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
from dataclasses import dataclass, replace

from ..errors import InvalidInputError, quote

__all__ = [
    "DEFAULT_COOLDOWN",
    "DEFAULT_MIN_CONFIDENCE",
    "HEALTH_PREFIX",
    "MAX_CONDITIONS",
    "MAX_TEXT",
    "Condition",
    "HealthSettings",
    "check_conditions",
    "condition_from_mapping",
    "health_with",
    "parse_condition_arg",
    "split_health",
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
    """A session's whole set: at most :data:`MAX_CONDITIONS`, ids unique, health settings readable."""
    items = tuple(conditions)
    if len(items) > MAX_CONDITIONS:
        raise InvalidInputError(f"conditions holds {len(items)} entries; at most {MAX_CONDITIONS} per session")
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InvalidInputError(f"conditions: id {quote(item.id)} is given twice")
        seen.add(item.id)
        if item.id.startswith(HEALTH_PREFIX):
            _health_fields(item)
    return items


# ---- built-in health thresholds as conditions (the proto's WatchCondition; no health field) ----
#
# A condition whose id starts with ``health.`` sets a built-in health condition (health.py)
# instead of adding one for a model to judge. Its text is ``on``, ``off`` or ``key=value``
# words (seconds, frames per second):
#
#   health.no_frames          after=10       no frame for that long
#   health.reconnecting       after=10       the source reconnecting that long
#   health.fps_range          min=5 max=30   source fps outside (max 0: no upper bound)
#   health.backend_down       on | off
#   health.budget_exhausted   on | off
#
# Given ones turn health on for the session (files and pushed media too, where it is off by
# default) and override those fields of the session's settings (a camera's [health] table);
# the alerts they raise carry the built-in id (``no_frames``...) with ``builtin`` set.

HEALTH_PREFIX = "health."
_HEALTH_FORMS = {
    "no_frames": ("after",), "reconnecting": ("after",), "fps_range": ("min", "max"),
    "backend_down": (), "budget_exhausted": (),
}
_HEALTH_FIELDS = {("no_frames", "after"): "no_frames_after", ("reconnecting", "after"): "reconnecting_after",
                  ("fps_range", "min"): "fps_min", ("fps_range", "max"): "fps_max"}


def split_health(conditions: Iterable[Condition]) -> tuple[tuple[Condition, ...], tuple[Condition, ...]]:
    """(conditions to judge, ``health.*`` settings) of a checked set."""
    items = tuple(conditions)
    return (tuple(c for c in items if not c.id.startswith(HEALTH_PREFIX)),
            tuple(c for c in items if c.id.startswith(HEALTH_PREFIX)))


def health_with(base: HealthSettings | None, specs: Iterable[Condition]) -> HealthSettings | None:
    """``base`` (None: health off) with the ``health.*`` conditions applied; on when any is given."""
    values: dict[str, object] = {}
    for spec in specs:
        values.update(_health_fields(spec))
    if not values:
        return base
    start = base if base is not None else HealthSettings()
    try:
        return replace(start, enabled=True, **values)  # type: ignore[arg-type]
    except InvalidInputError as exc:
        raise InvalidInputError(f"conditions: {exc.message}") from exc


def _health_fields(spec: Condition) -> dict[str, object]:
    """The HealthSettings fields one ``health.*`` condition sets; InvalidInputError naming the form."""
    name = spec.id[len(HEALTH_PREFIX):]
    where = f"conditions[{quote(spec.id)}]"
    if name not in _HEALTH_FORMS:
        raise InvalidInputError(f"{where}: unknown health condition; one of "
                                f"{', '.join(HEALTH_PREFIX + n for n in _HEALTH_FORMS)}")
    keys = _HEALTH_FORMS[name]
    form = " ".join(f"{k}=N" for k in keys) or "on"
    words = spec.text.lower().split()
    if words in (["off"], ["0"]):
        return {f: 0.0 for (n, _), f in _HEALTH_FIELDS.items() if n == name} if keys else {name: False}
    if not keys:
        if words not in (["on"], ["1"], ["true"]):
            raise InvalidInputError(f"{where}.text must be on or off, got {quote(spec.text)}")
        return {name: True}
    out: dict[str, object] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or key not in keys:
            raise InvalidInputError(f"{where}.text must look like {quote(form)} (or off), got {quote(spec.text)}")
        try:
            number = float(value.rstrip("s"))
        except ValueError:
            raise InvalidInputError(f"{where}.text: {key} is not a number: {quote(value)}") from None
        if not (math.isfinite(number) and number >= 0):
            raise InvalidInputError(f"{where}.text: {key} must be >= 0, got {quote(value)}")
        out[_HEALTH_FIELDS[(name, key)]] = number
    if not out:
        raise InvalidInputError(f"{where}.text must look like {quote(form)} (or off)")
    return out


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
