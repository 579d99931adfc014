"""Who is calling: principals, their rights, and the principal of the current RPC.

Skeleton shared by the server's modules: ``current_principal()`` is what every
handler and policy asks. With authentication off (no ``--auth-tokens``) every
call is made by :data:`ANONYMOUS`, which holds every right, so a loopback
server without tokens behaves as before.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

RIGHTS = frozenset({"push", "watch", "subscribe", "manage", "snapshot", "admin"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: its configured ``name`` and its ``rights`` (subset of RIGHTS)."""

    name: str
    rights: frozenset[str]

    def can(self, right: str) -> bool:
        return right in self.rights or "admin" in self.rights

    @property
    def is_admin(self) -> bool:
        return "admin" in self.rights


ANONYMOUS = Principal(name="anonymous", rights=RIGHTS)

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("vision_stream_principal", default=ANONYMOUS)


def current_principal() -> Principal:
    """The principal of the RPC being handled (ANONYMOUS when authentication is off)."""
    return _current.get()


def set_principal(principal: Principal) -> contextvars.Token[Principal]:
    return _current.set(principal)
