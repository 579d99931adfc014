"""Emulated ephemeral tokens: minted by the REST half, spent by the Live half.

Google's preview (LIVE_API.md "Endpoints and auth"; google-genai 3.6.1
``tokens.py`` and ``types.AuthToken``): a server holding the real key calls
``POST /v1alpha/auth_tokens`` with ``uses`` (default 1, 0 = unlimited),
``expireTime`` (default now + 30 min: messages after it are refused),
``newSessionExpireTime`` (default now + 60 s: no new session after it), both
RFC 3339 and less than 20 h ahead, and optionally ``bidiGenerateContentSetup``
(the locked Live config; here only its ``model`` is enforced). The answer
names the token ``auth_tokens/<id>``. A browser then opens
``BidiGenerateContentConstrained`` with ``Authorization: Token <name>`` or
``?access_token=<name>``. Resuming a session does not spend a use.

One :class:`AuthTokens` store is shared by both emulators of one
``vision-stream emulate`` (they are separate servers on separate ports).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TOKEN_PREFIX = "auth_tokens/"
DEFAULT_EXPIRE = 30 * 60.0  # seconds
DEFAULT_NEW_SESSION_EXPIRE = 60.0
MAX_AHEAD = 20 * 3600.0
MINT_FIELDS = frozenset({"uses", "expireTime", "newSessionExpireTime", "bidiGenerateContentSetup", "fieldMask"})


class TokenRefused(Exception):
    """A mint request or a token use that Google would refuse; the message is the reason text."""


@dataclass(slots=True)
class AuthToken:
    """One minted token. Times are epoch seconds."""

    name: str
    uses: int  # 0: unlimited
    expire_at: float
    new_session_expire_at: float
    model: str = ""  # the locked model id ("" when not locked)
    used: int = 0


def rfc3339(epoch: float) -> str:
    """``2026-09-15T12:00:00.000000Z``: how Google writes a Timestamp in JSON."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp(value: object, field: str) -> float:
    if not isinstance(value, str):
        raise TokenRefused(f"Invalid value at '{field}' (type.googleapis.com/google.protobuf.Timestamp)")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise TokenRefused(f"Invalid value at '{field}' (type.googleapis.com/google.protobuf.Timestamp), "
                           f"Field '{field}', Invalid time format") from None


class AuthTokens:
    """The tokens minted so far (see module docstring)."""

    def __init__(self) -> None:
        self.tokens: dict[str, AuthToken] = {}

    def mint(self, body: Mapping[str, Any] | None, *, now: float | None = None) -> dict[str, Any]:
        """The ``AuthToken`` JSON answering ``POST /v1alpha/auth_tokens``; raises :class:`TokenRefused`."""
        body = body or {}
        now = time.time() if now is None else now
        unknown = sorted(set(body) - MINT_FIELDS)
        if unknown:
            raise TokenRefused(f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.')
        uses = body.get("uses", 1)
        if isinstance(uses, bool) or not isinstance(uses, int) or uses < 0:
            raise TokenRefused("Invalid value at 'uses' (TYPE_INT32)")
        expire = _timestamp(body["expireTime"], "expire_time") if "expireTime" in body else now + DEFAULT_EXPIRE
        new_session = (_timestamp(body["newSessionExpireTime"], "new_session_expire_time")
                       if "newSessionExpireTime" in body else now + DEFAULT_NEW_SESSION_EXPIRE)
        for at in (expire, new_session):
            if not now < at <= now + MAX_AHEAD:
                raise TokenRefused("expire_time and new_session_expire_time must be in the future, "
                                   "less than 20 hours ahead.")
        setup = body.get("bidiGenerateContentSetup") or {}
        model = str(setup.get("setup", setup).get("model", "") if isinstance(setup, Mapping) else "")
        token = AuthToken(name=f"{TOKEN_PREFIX}{secrets.token_hex(16)}", uses=uses, expire_at=expire,
                          new_session_expire_at=new_session, model=model.rsplit("/", 1)[-1])
        self.tokens[token.name] = token
        return {"name": token.name, "uses": uses, "expireTime": rfc3339(expire),
                "newSessionExpireTime": rfc3339(new_session)}

    def redeem(self, name: str, *, model: str, new_session: bool, now: float | None = None) -> None:
        """Spend ``name`` on a connection (a use only for a new session); raises :class:`TokenRefused`."""
        now = time.time() if now is None else now
        token = self.tokens.get(name)
        if token is None or now >= token.expire_at:
            raise TokenRefused("The auth token is invalid or has expired.")
        if token.model and token.model != model.rsplit("/", 1)[-1]:
            raise TokenRefused(f"The auth token is locked to model models/{token.model}.")
        if not new_session:
            return
        if now >= token.new_session_expire_at:
            raise TokenRefused("The auth token can no longer start new sessions (newSessionExpireTime).")
        if token.uses and token.used >= token.uses:
            raise TokenRefused("The auth token has no uses left.")
        token.used += 1
