"""Keep secrets out of everything we print: URLs with credentials, API keys."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_QUERY_SECRET = re.compile(r"(?i)([?&](?:key|api_key|apikey|token|access_token|password|auth)=)[^&#\s]*")


def redact_url(url: str) -> str:
    """``rtsp://user:pw@host/x?key=K`` → ``rtsp://user:***@host/x?key=***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if user else f"***@{hostport}"
    redacted = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return _QUERY_SECRET.sub(r"\1***", redacted)


class Secret:
    """A string that never shows itself in repr/str/logs; ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def scrub(text: str, *secrets: str) -> str:
    """Remove known secret values and URL credentials from free text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@/\s]*@", r"\1***@", text)
