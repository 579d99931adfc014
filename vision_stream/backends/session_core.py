"""The chassis every backend session is built on: output, failure, closing.

Live, REST, offline and the failover chain each *compose* one
:class:`SessionCore` (no base class: each session keeps its own shape) so
the four agree on the parts of the :class:`~vision_stream.backends.base.BackendSession`
contract that are not about analysis:

* ``events``: the bounded :class:`~vision_stream.backends.event_stream.EventStream`
  the session's ``events()`` returns;
* ``failure`` and :meth:`SessionCore.fail`: the first fatal error, stored with its
  verdict (``code``, ``retryable``, ``retry_after``) and reported once as an
  ``error`` event, so the failover chain reads why a link failed from the
  contract instead of guessing;
* :meth:`SessionCore.check_usable`: what every ``send_*``/``prompt`` calls first;
  it re-raises the stored failure as a fresh copy (``clone()``: verdict intact)
  or a :class:`~vision_stream.errors.SessionError` once closing began;
* :meth:`SessionCore.close_worker`: a bounded close: let a worker finish within
  a grace period, then cancel it (also when ``close()`` itself is cancelled, so no
  task outlives its session);
* :meth:`SessionCore.guard`: the crash guard around a supervisor or worker: a
  :class:`~vision_stream.errors.BackendError` becomes the failure, a bug is
  logged with its traceback and becomes a failure too (the pipeline must never
  wait forever on a dead task), cancellation passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from ..errors import BackendError, SessionError
from ..events import ErrorEvent
from .event_stream import EventStream

__all__ = ["SessionCore"]

log = logging.getLogger("vision_stream.backends")


class SessionCore:
    """Output queue, failure and closing state of one backend session (see module).

    label: how messages and logs name the session ("live session", "REST session").
    session_id: the pipeline session's id, for logs.
    event_queue: events buffered for the consumer before producers wait.
    on_failure: called with the failure when it is recorded (REST tells its
        backend, which shares quota holds between sessions).
    """

    def __init__(
        self,
        *,
        label: str,
        session_id: str = "",
        event_queue: int,
        on_failure: Callable[[BackendError], None] | None = None,
    ) -> None:
        self.label = label
        self.session_id = session_id
        self.events = EventStream(event_queue)
        self.failure: BackendError | None = None
        self.closing = False  # close() began: inputs are refused
        self.closed = False  # close() ran (it is idempotent)
        self._on_failure = on_failure

    # ---- input side -----------------------------------------------------------------------

    def check_usable(self) -> None:
        """Raise why the session cannot take input: its failure (a copy, verdict intact), or
        a :class:`SessionError` once closing began."""
        failure = self.failure
        if failure is not None:
            raise cast(BackendError, failure.clone())
        if self.closing:
            raise SessionError(f"{self.label} is closing")

    def begin_close(self) -> bool:
        """Start closing: inputs are refused from now on. False when ``close()`` already ran."""
        if self.closed:
            return False
        self.closed = self.closing = True
        return True

    # ---- failure --------------------------------------------------------------------------

    def record_failure(self, exc: BackendError) -> None:
        """Keep ``exc`` as the failure (the first one wins) without reporting it as an event."""
        if self.failure is None:
            self.failure = exc
            if self._on_failure is not None:
                self._on_failure(exc)

    async def fail(self, exc: BackendError, media_time: float | None = None) -> None:
        """Record ``exc`` as the session's failure and report it as an ``error`` event."""
        self.record_failure(exc)
        log.warning("%s %s failed: %s", self.label, self.session_id, exc.message)
        await self.events.put(ErrorEvent(exc.code, exc.message, retryable=exc.retryable), media_time)

    @contextlib.asynccontextmanager
    async def guard(
        self,
        what: str,
        *,
        end_events: bool = True,
        media_time: Callable[[], float | None] | None = None,
    ) -> AsyncIterator[None]:
        """Crash guard for a supervisor or worker task body (``async with core.guard("..."):``).

        A :class:`BackendError` becomes the failure; any other exception is a bug:
        logged with its traceback and reported as a failure (``code="internal"``),
        so the consumer of ``events()`` is never left waiting. Cancellation passes
        through. ``end_events``: end ``events()`` when the body exits, however it exits.
        ``media_time``: when the failure happened, for the ``error`` event.
        """
        try:
            yield
        except asyncio.CancelledError:
            raise
        except BackendError as exc:
            await self.fail(exc, media_time() if media_time else None)
        except Exception as exc:  # a bug must not leave the pipeline waiting forever
            log.exception("%s crashed", what)
            error = BackendError(f"{what} failed: {type(exc).__name__}: {exc}", code="internal")
            await self.fail(error, media_time() if media_time else None)
        finally:
            if end_events:
                self.events.end()

    # ---- closing --------------------------------------------------------------------------

    async def close_worker(self, task: asyncio.Task[Any] | None, grace: float) -> bool:
        """Let ``task`` finish within ``grace`` seconds, then cancel it; True when it finished.

        Shielded wait: the timeout cancels only our wait, not the task, which is
        then cancelled explicitly, also when the caller itself is cancelled (the
        task never outlives the close).
        """
        if task is None or task.done():
            return True
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(task)
            return True
        except TimeoutError:
            log.info("%s %s: %s did not finish within %g s", self.label, self.session_id, task.get_name(), grace)
            return False
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
