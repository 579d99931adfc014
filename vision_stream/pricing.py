"""Estimated cost of a :class:`~vision_stream.usage.Usage`, from ``prices.toml``.

Prices are data, not code (LIVE_API.md "Cost": they change; ship them with the
date they were read, let the user override). The shipped table is package data;
``--prices FILE`` (or ``VISION_STREAM_PRICES``) merges a user's file over it,
family by family and kind by kind. Costs are estimates: Google's bill is the
truth, this only follows its published per-token prices.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InvalidInputError
from .usage import KINDS, Usage

__all__ = ["PriceTable", "estimate_cost", "load_prices", "price_table", "use_prices"]

PRICES_ENV = "VISION_STREAM_PRICES"
_override: Path | None = None


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Dollars per 1M tokens by family and kind; ``read``: when the prices were read."""

    read: str
    families: Mapping[str, Mapping[str, Any]]

    def family_of(self, model: str) -> str:
        """The longest family name ``model`` starts with (``models/`` and Vertex's
        ``projects/.../models/`` prefixes dropped), else ``default``."""
        name = model.rsplit("/", 1)[-1]
        matches = [f for f in self.families if f != "default" and name.startswith(f)]
        return max(matches, key=len) if matches else "default"

    def per_million(self, model: str, on: dt.date | None = None) -> dict[str, float]:
        """Each kind's price for ``model`` on ``on`` (today by default)."""
        entry = self.families.get(self.family_of(model), {})
        prices = {k: float(v) for k, v in entry.items() if k in KINDS}
        day = (on or dt.date.today()).isoformat()
        for period in sorted(entry.get("from", ()), key=lambda p: str(p.get("date", ""))):
            if str(period.get("date", "")) <= day:
                prices.update({k: float(v) for k, v in period.items() if k in KINDS})
        return prices


def _read(path: Path | None) -> dict[str, Any]:
    try:
        if path is None:
            return tomllib.loads(resources.files(__package__).joinpath("prices.toml").read_text("utf-8"))
        return tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read the price file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"price file {path} is not valid TOML: {exc}") from exc


def _merge(base: dict[str, Any], extra: Mapping[str, Any], path: Path) -> dict[str, Any]:
    families = {name: dict(entry) for name, entry in base.get("families", {}).items()}
    for name, entry in (extra.get("families") or {}).items():
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"price file {path}: families.{name} must be a table")
        for kind, value in entry.items():
            if kind in KINDS and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
                raise InvalidInputError(f"price file {path}: families.{name}.{kind} must be a number >= 0")
            if kind not in KINDS and kind != "from":
                raise InvalidInputError(
                    f"price file {path}: unknown kind families.{name}.{kind} (kinds: {', '.join(KINDS)})")
        families.setdefault(name, {}).update(entry)
    return {"read": str(extra.get("read", base.get("read", ""))), "families": families}


@lru_cache(maxsize=8)
def load_prices(path: Path | None = None) -> PriceTable:
    """The shipped table, with ``path``'s entries merged over it when given."""
    data = _read(None)
    if path is not None:
        data = _merge(data, _read(path), path)
    return PriceTable(read=str(data.get("read", "")), families=data.get("families", {}))


def use_prices(path: str | Path | None) -> PriceTable:
    """Make ``path`` this process's price override (the CLI's ``--prices``);
    validates it now so a bad file is a usage error at start, not mid-session."""
    global _override
    _override = None if path is None else Path(path)
    return price_table()


def price_table() -> PriceTable:
    """The table in force: ``use_prices``' file, else ``$VISION_STREAM_PRICES``, else the shipped one."""
    env = os.environ.get(PRICES_ENV)
    path = _override or (Path(env) if env else None)
    return load_prices(path)


def estimate_cost(usage: Usage, model: str, table: PriceTable | None = None) -> float:
    """US dollars for ``usage`` billed at ``model``'s prices (kinds without a price cost 0)."""
    prices = (table or price_table()).per_million(model)
    return sum(count * prices.get(kind, 0.0) for kind, count in usage.tokens.items()) / 1_000_000
