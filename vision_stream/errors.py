"""The one exception tree of vision-stream.

::

    VisionStreamError                 root; every error we raise on purpose
    ├── UsageError                    bad settings or arguments from a user/client
    │   ├── InvalidInputError         a client message or file that cannot be used
    │   ├── NotFoundError             a missing file, session or model
    │   ├── UnauthenticatedError      no valid token presented (never echoes it)
    │   ├── PermissionDeniedError     a path outside the media root, a URL not allowed, a right not held
    │   ├── LimitExceededError        a configured limit (sessions, sizes, rates) reached
    │   ├── InputTimeoutError         a client sent nothing (or no media) for too long
    │   ├── CameraConfigError         the cameras file cannot be used (names file and key)
    │   └── AuthConfigError           a tokens or TLS file cannot be used (names file and key)
    ├── MediaError                    opening/decoding media
    │   ├── SourceOpenError           cannot open a source (missing, refused, auth)
    │   └── DecodeError               a packet/frame/chunk that cannot be decoded
    ├── BackendError                  an analysis backend failed
    │   ├── ProtocolError             the peer broke its protocol (bad JSON, bad state)
    │   │   └── LiveStateError        a Live message sent or received in a state that forbids it
    │   ├── TransportError            the connection failed (refused, closed, timeout)
    │   └── ServiceError              the service answered with an error (HTTP status or close code)
    ├── SessionError                  a session could not run (state, shutdown)
    ├── RetentionGapError             a subscriber asked for events no longer retained
    └── ResumeAheadError              a subscriber asked to resume after an event not yet produced

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
        ``retry_after``, and ``http_status``/``close_code`` where the class has them), optionally
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


class CameraConfigError(UsageError):
    """The cameras file cannot be used; the message names file, key and problem."""

    code = "camera_config"


class AuthConfigError(UsageError):
    """A tokens file or TLS file cannot be used; the message names the file and key
    (never a file's content)."""

    code = "auth_config"


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


class LiveStateError(ProtocolError):
    """A Live message was sent or received in a state that does not allow it
    (raised by the sans-I/O core, ``backends/gemini_live/protocol.py``)."""


class TransportError(BackendError):
    code = "transport"
    retryable = True


class ServiceError(BackendError):
    """The remote service answered with an error.

    ``http_status`` is the HTTP status of a refused request (REST, or the
    WebSocket upgrade), ``close_code`` the WebSocket close code of a Live
    connection the service closed (RFC 6455 §7.4): the same number means
    different things in each (HTTP 1008 does not exist; close code 400 neither),
    so they are kept apart. ``status`` (read-only) is whichever is known, for
    code that only compares it with a single well-known value.

    The ``status=`` keyword is accepted for existing callers and sorted by
    range: RFC 6455 close codes are 1000-4999, HTTP statuses 100-599.
    """

    code = "service"

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        close_code: int | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, code=code, retry_after=retry_after)
        if status is not None:
            if _is_close_code(status):
                close_code = status if close_code is None else close_code
            else:
                http_status = status if http_status is None else http_status
        self.http_status = http_status
        self.close_code = close_code

    @property
    def status(self) -> int | None:
        """The HTTP status, else the close code (None when neither is known)."""
        return self.http_status if self.http_status is not None else self.close_code


def _is_close_code(number: int) -> bool:
    return 1000 <= number <= 4999


class SessionError(VisionStreamError):
    code = "session"


class StaleRunError(SessionError):
    """A subscriber resumed with a position of a run the session no longer has (it
    restarted without its events): resuming would skip the new run's first events."""

    code = "stale_run"

    def __init__(self, session_id: str, run_id: str, current_run: str) -> None:
        super().__init__(f"session {session_id!r}: after_seq belongs to run {run_id[:40]!r}, but the session is "
                         f"now in run {current_run!r} (a restart without its events); subscribe with "
                         f"run_id {current_run!r} and after_seq 0, or allow_gap to start at its beginning")
        self.run_id = run_id
        self.current_run = current_run


class RetentionGapError(VisionStreamError):
    """Events a subscriber asked for already left the retention window."""

    code = "retention_gap"

    def __init__(self, after_seq: int, oldest_seq: int) -> None:
        super().__init__(
            f"events after seq {after_seq} are no longer retained; the oldest kept is {oldest_seq} "
            "(resume with allow_gap to continue from there)"
        )
        self.after_seq = after_seq
        self.oldest_seq = oldest_seq


class EvidenceRangeError(VisionStreamError):
    """GetFrames/ExportClip asked for frames or a span the session no longer (or
    never) held; the message names what is retained."""

    code = "evidence_range"


class ResumeAheadError(VisionStreamError):
    """A subscriber asked to resume after an event the session has not produced
    (a position from another run of the session, or made up): waiting for it
    would skip everything up to it in silence."""

    code = "resume_ahead"

    def __init__(self, after_seq: int, last_seq: int) -> None:
        super().__init__(f"after_seq {after_seq} is past the session's last event ({last_seq}); "
                         f"resume from at most {last_seq}")
        self.after_seq = after_seq
        self.last_seq = last_seq
