"""The one exception tree of vision-stream.

::

    VisionStreamError                 root; every error we raise on purpose
    ├── UsageError                    bad settings or arguments from a user/client
    │   ├── InvalidInputError         a client message or file that cannot be used
    │   ├── NotFoundError             a missing file, session or model
    │   ├── UnauthenticatedError      no valid token presented (never echoes it)
    │   ├── PermissionDeniedError     a path outside the media root, a URL not allowed, a right not held
    │   ├── LimitExceededError        a configured limit (sessions, sizes, rates) reached
    │   └── InputTimeoutError         a client sent nothing (or no media) for too long
    ├── MediaError                    opening/decoding media
    │   ├── SourceOpenError           cannot open a source (missing, refused, auth)
    │   └── DecodeError               a packet/frame/chunk that cannot be decoded
    ├── BackendError                  an analysis backend failed
    │   ├── ProtocolError             the peer broke its protocol (bad JSON, bad state)
    │   ├── TransportError            the connection failed (refused, closed, timeout)
    │   └── ServiceError              the service answered with an error (status/close code)
    └── SessionError                  a session could not run (state, shutdown)

Every error carries ``retryable`` (transient vs permanent, used by the retry
policies) and a message that never contains secrets. The mapping to gRPC
status codes lives in exactly one place: ``vision_stream.server.status``.
Client-supplied text quoted in a message goes through :func:`quote`, so a
message never grows with what the client sent.
"""

from __future__ import annotations

# Longest client-supplied value quoted in an error message (characters).
QUOTE_CHARS = 80


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long it was.

    The one way to echo client input (names, ids, paths, JSON) in an error:
    the reply stays small whatever the client sent (gRPC refuses a status
    whose details exceed the peer's metadata limit, 8 KiB by default).
    """
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    head = text[:limit]
    shown = repr(head) if isinstance(value, str) else head
    return f"{shown}... ({len(text)} characters)"


class VisionStreamError(Exception):
    """Root of every error vision-stream raises on purpose.

    Its verdict travels with it (``vision_stream.retry``): ``retryable``,
    ``code`` (``"quota"`` for a quota refusal) and ``retry_after``, the seconds
    the peer asked us to wait when it said so (None otherwise).
    """

    retryable: bool = False
    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def clone(self, message: str | None = None) -> VisionStreamError:
        """A new error of the same class and verdict (``code``, ``retryable``,
        ``retry_after``, and ``status`` where the class has one), optionally
        with another message: for re-raising a stored failure without losing fields."""
        copy = Exception.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.message = self.message if message is None else message
        copy.args = (copy.message,)
        return copy


class UsageError(VisionStreamError):
    code = "usage"


class InvalidInputError(UsageError):
    code = "invalid_input"


class NotFoundError(UsageError):
    code = "not_found"


class UnauthenticatedError(UsageError):
    """No valid credentials; the message never contains what was presented."""

    code = "unauthenticated"


class PermissionDeniedError(UsageError):
    code = "permission_denied"


class LimitExceededError(UsageError):
    """A configured limit was reached; ``retry_after`` (seconds), when known, is
    when trying again may succeed (sent to gRPC clients as ``RetryInfo``)."""

    code = "limit_exceeded"


class InputTimeoutError(UsageError):
    """A client's call sent nothing it had to send in time (first message, media)."""

    code = "input_timeout"


class MediaError(VisionStreamError):
    code = "media"


class SourceOpenError(MediaError):
    code = "source_open"


class DecodeError(MediaError):
    code = "decode"


class BackendError(VisionStreamError):
    code = "backend"


class ProtocolError(BackendError):
    code = "protocol"


class TransportError(BackendError):
    code = "transport"
    retryable = True


class ServiceError(BackendError):
    """The remote service answered with an error.

    ``status`` is the HTTP status or WebSocket close code when known.
    """

    code = "service"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, code=code, retry_after=retry_after)
        self.status = status


class SessionError(VisionStreamError):
    code = "session"
