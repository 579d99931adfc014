"""Keep secrets out of everything we print: one redaction for client-visible text and log lines.

Everything that may carry a credential goes through :func:`redact_url` (one
URL) or :func:`scrub` (free text); log records go through
:class:`RedactingFilter`, which :func:`install_log_redaction` puts on the root
logger's handlers (the CLI does it at start-up; library users may call it too).
Every secret becomes the one placeholder :data:`PLACEHOLDER`.

What counts as a secret in a URL (decided here, once):

* the password of the user-info, whatever it contains. Camera passwords are
  often written unencoded, with ``#``, ``/``, ``@`` or ``:`` in them, which
  ``urllib.parse.urlsplit`` reads as fragment or path. So the user-info is
  found by hand: it runs to the *last* ``@`` of the URL whenever the text
  before that ``@`` has a ``:`` before its first ``/``, ``?`` or ``#``
  (``user:pass...``) or has none of those at all. A path that itself
  contains ``@`` after a ``host:port`` is over-redacted; never under-.
* the user name when there is no password (``https://TOKEN@host/x``: a bearer
  token passed as user name is the common form) or when it looks random
  (:func:`looks_like_secret`). A short user name with a password (``admin``,
  ``viewer``) stays: it helps to read which account a camera uses.
* query and fragment parameters whose name is a credential
  (:func:`is_secret_name`: ``pwd``, ``passwd``, ``password``, ``token``,
  ``access_token``, ``key``, ``api_key``, ``sig``, ``X-Amz-Signature``, ...,
  case-insensitive). Their values become ``***``; the names stay, so a
  reader still sees which credential was sent.

Free text additionally loses the values of ``Authorization`` /
``x-goog-api-key`` style header lines, ``Bearer``/``Basic`` credentials,
``name=value`` pairs with a credential name (websockets logs a request line as
a bare path, ``GET /ws/...?key=K``), and every known secret value passed in or
registered with :func:`register_secrets`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

__all__ = [
    "PLACEHOLDER",
    "RedactingFilter",
    "RedactingLogger",
    "Secret",
    "install_log_redaction",
    "is_secret_name",
    "looks_like_secret",
    "redact_url",
    "register_secrets",
    "scrub",
]

PLACEHOLDER = "***"

# Exact parameter names (lower case) that carry a credential.
_SECRET_NAMES = frozenset({
    "pwd", "passwd", "password", "pass", "passphrase", "pw",
    "token", "access_token", "refresh_token", "id_token", "auth_token", "bearer", "jwt",
    "auth", "authorization", "key", "api_key", "apikey", "api-key", "x-api-key", "x-goog-api-key",
    "sig", "signature", "secret", "client_secret", "credential", "credentials",
    "session", "sessionid", "session_id", "sid",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    "x-goog-signature", "x-goog-credential",
})
# Any name containing one of these is a credential too (``camera_password``, ``oauth_token``).
_SECRET_PARTS = ("passw", "passwd", "secret", "token", "signature", "credential", "apikey", "api_key", "api-key")

# A scheme starts where no scheme character precedes it and is at most 32
# characters long (RFC 3986 sets no limit; real ones are short). Both bounds keep
# the scan linear: without them every letter of a long word restarts it, and
# Python's re holds the GIL (a 64k-character session id froze the server 4.5 s).
_SCHEME_PART = r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}://"
_SCHEME = re.compile(_SCHEME_PART)
# A URL inside free text: it ends at whitespace, a quote or an angle bracket.
_URL_IN_TEXT = re.compile(_SCHEME_PART + r"[^\s'\"<>`]+")
# ``name=value`` inside free text or a query: the name may not continue a longer word.
_PAIR = re.compile(r"(?<![\w.-])([A-Za-z][\w.-]*)=([^&;#\s'\"<>`,)]*)")
# Header lines as websockets and httpx log them (``> x-goog-api-key: K``) and bare schemes.
_HEADER = re.compile(
    r"(?i)\b(x-goog-api-key|x-api-key|api-key|authorization|proxy-authorization|cookie|set-cookie)"
    r"(\s*[:=]\s*)([^\r\n]*)"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(Bearer|Basic|Digest)\s+[A-Za-z0-9._~+/=-]{6,}")

_registered: set[str] = set()
_registered_lock = threading.Lock()


def is_secret_name(name: str) -> bool:
    """True for a query/fragment/header parameter name that carries a credential."""
    lowered = unquote(name).lower()
    return lowered in _SECRET_NAMES or any(part in lowered for part in _SECRET_PARTS)


def looks_like_secret(text: str) -> bool:
    """True for a user name that reads like a generated token rather than an account name.

    Long (24+ characters), or 16+ characters mixing letters and digits
    (``AKIA...`` access keys, ``ghp_...`` tokens). Errs on the side of hiding.
    """
    if len(text) >= 24:
        return True
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    return len(text) >= 16 and has_digit and has_alpha


def _redact_pairs(text: str) -> str:
    """``a=1&token=T`` -> ``a=1&token=***``: values of credential-named pairs."""

    def replace(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        if not value or not is_secret_name(name):
            return match.group(0)
        kept = value.rstrip(".:!")
        return f"{name}={PLACEHOLDER}{value[len(kept):] if kept else ''}"  # sentence punctuation stays

    return _PAIR.sub(replace, text)


def _redact_query(query: str) -> str:
    """Every ``&``/``;``-separated parameter of a query or fragment, values of credentials hidden whole."""
    parts = re.split(r"([&;])", query)
    for i in range(0, len(parts), 2):
        name, equals, value = parts[i].partition("=")
        if equals and value and is_secret_name(name):
            parts[i] = f"{name}={PLACEHOLDER}"
    return "".join(parts)


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """``user:pass@host/x`` -> (``user:pass``, ``host/x``); (None, rest) without user-info.

    Takes the last ``@`` whose prefix is user-info shaped (see the module doc),
    so a password holding ``#``, ``/``, ``@`` or ``:`` is covered whole.
    """
    at = rest.rfind("@")
    while at >= 0:
        candidate = rest[:at]
        stop = min((i for i in (candidate.find(c) for c in "/?#") if i >= 0), default=-1)
        if stop < 0 or 0 <= candidate.find(":") < stop:
            return candidate, rest[at + 1:]
        at = rest.rfind("@", 0, at)
    return None, rest


def _redact_userinfo(userinfo: str) -> str:
    user, colon, _password = userinfo.partition(":")
    if not colon or not user or looks_like_secret(user):
        return PLACEHOLDER  # a token as user name, or a user name that reads like one
    return f"{user}:{PLACEHOLDER}"


def redact_url(url: str) -> str:
    """A URL safe to show: ``rtsp://admin:pa#ss/w@rd@cam/x?pwd=1`` -> ``rtsp://admin:***@cam/x?pwd=***``.

    Never raises; text without ``scheme://`` only has its credential pairs redacted.
    """
    match = _SCHEME.match(url)
    if match is None:
        return _redact_pairs(url)
    head, rest = url[:match.end()], url[match.end():]
    userinfo, rest = _split_userinfo(rest)
    before_fragment, hash_mark, fragment = rest.partition("#")
    location, question, query = before_fragment.partition("?")
    redacted = head
    if userinfo is not None:
        redacted += _redact_userinfo(userinfo) + "@"
    redacted += location
    if question:
        redacted += "?" + _redact_query(query)
    if hash_mark:
        redacted += "#" + _redact_query(fragment)  # OAuth implicit flow: ``#access_token=...``
    return redacted


def register_secrets(*values: str | None) -> None:
    """Known secret values (API keys, auth tokens) that every :func:`scrub` and log line hides."""
    with _registered_lock:
        _registered.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)


# Values shorter than this are not replaced wherever they occur: a 1-3 character "key" protects
# nothing, and replacing it garbles every message (GEMINI_API_KEY=x against the emulator turned
# "next" into "ne***t"). Header, query and URL patterns still hide such values where they are used.
_MIN_SECRET_CHARS = 4


def _known_secrets(extra: Iterable[str | None]) -> list[str]:
    with _registered_lock:
        found = set(_registered)
    found.update(v for v in extra if v and len(v) >= _MIN_SECRET_CHARS)
    return sorted(found, key=len, reverse=True)  # a longer secret may contain a shorter one


def scrub(text: str, *secrets: str | None) -> str:
    """Free text without known secret values, URL credentials, credential pairs or header values."""
    for secret in _known_secrets(secrets):
        text = text.replace(secret, PLACEHOLDER)
    text = _URL_IN_TEXT.sub(_redact_url_in_text, text)
    text = _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{PLACEHOLDER}", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {PLACEHOLDER}", text)
    return _redact_pairs(text)


def _redact_url_in_text(match: re.Match[str]) -> str:
    """A URL found in prose; punctuation that ends the sentence (``...x?pwd=1:``) stays outside it."""
    url = match.group(0)
    stripped = url.rstrip(".,;:)]}!")
    return redact_url(stripped) + url[len(stripped):]


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
        return f"Secret('{PLACEHOLDER}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message (and traceback) through :func:`scrub`.

    On a handler it sees every record that reaches that handler, also those of
    third-party loggers (httpx logs ``HTTP Request: GET <full URL>`` at INFO;
    websockets logs request lines and headers at DEBUG). The message is
    formatted once here (``msg % args``) and the args dropped, so no handler
    can format the raw values again.
    """

    def __init__(self, *secrets: str | None) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the parts, scrubbed
            message = f"{record.msg} {record.args!r}"
        record.msg = scrub(message, *self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, *self.secrets)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info, *self.secrets)
        return True


def install_log_redaction(*secrets: str | None, logger: logging.Logger | None = None) -> RedactingFilter:
    """Register ``secrets`` and put one :class:`RedactingFilter` on every handler of ``logger`` (root).

    Call after the handlers exist (after ``logging.basicConfig``); calling it
    again adds no second filter to a handler that has one.
    """
    register_secrets(*secrets)
    target = logger or logging.getLogger()
    installed = RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(installed)
    return installed


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that scrubs each message before it is logged, whatever handlers are configured.

    Given to websockets (``logger=``): it logs every request header at DEBUG,
    including ``x-goog-api-key`` and ``Authorization``.
    """

    def __init__(self, logger: logging.Logger, *secrets: str | None) -> None:
        super().__init__(logger, {})
        self.secrets = tuple(s for s in secrets if s)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, scrub(text, *self.secrets), **kwargs)
