"""Reading the tables of one TOML config file (cameras, sinks): the one parser both build on.

Every error names the file and the key, never the value found there: a value in
the wrong place may be a secret (a password URL, a webhook secret).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import CameraConfigError


class TableParser:
    def __init__(self, origin: Path, env: Mapping[str, str]) -> None:
        self.origin = origin
        self.env = env

    def error(self, key: str, problem: str) -> CameraConfigError:
        return CameraConfigError(f"{self.origin}: {key}: {problem}")

    def keys(self, table: dict[str, Any], where: str, known: set[str]) -> None:
        for key in table:
            if key not in known:
                place = f"{where}.{key}" if where else key
                raise self.error(place, f"unknown key (known: {', '.join(sorted(known))})")

    def table(self, parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            raise self.error(where, f"must be a table, got {type(value).__name__}")
        return value

    def value(self, table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...],
              default: Any) -> Any:
        if key not in table:
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # TOML integers are fine where a float is expected; booleans are not numbers.
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(f"{where}.{key}", f"must be {names}, got {type(value).__name__}")
        return value
