"""The server's running sessions: create with a bound, look up, stop, shut down.

Sessions are owned here, not by the RPC that created them: a session survives
its subscribers (and the ``Watch`` caller) leaving. Ended sessions stay
listed (and subscribable, for their retained events) until ``keep_ended``
newer ones have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import uuid
from collections import OrderedDict

from .errors import InvalidInputError, LimitExceededError, NotFoundError
from .pipeline import Session

log = logging.getLogger(__name__)


class SessionRegistry:
    def __init__(self, *, max_sessions: int, keep_ended: int = 32) -> None:
        self.max_sessions = max_sessions
        self.keep_ended = keep_ended
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._counter = itertools.count(1)
        self._closing = False

    def new_id(self) -> str:
        return f"s{next(self._counter)}-{uuid.uuid4().hex[:8]}"

    def check_capacity(self, session_id: str) -> None:
        """Raise before any resource is opened for a session that cannot be started."""
        if self._closing:
            raise LimitExceededError("server is shutting down; no new sessions")
        existing = self._sessions.get(session_id)
        if existing is not None and not existing.ended:
            raise InvalidInputError(f"session {session_id!r} already exists and is running")
        if self.running_count() >= self.max_sessions:
            raise LimitExceededError(f"too many sessions: the server runs at most {self.max_sessions}")

    def start(self, session: Session) -> Session:
        """Register and start running ``session`` (owned by the registry from now on)."""
        self.check_capacity(session.session_id)
        self._sessions.pop(session.session_id, None)
        self._sessions[session.session_id] = session
        task = asyncio.create_task(session.run(), name=f"session-{session.session_id}")
        self._tasks[session.session_id] = task
        task.add_done_callback(functools.partial(self._on_done, session.session_id))
        return session

    def _on_done(self, session_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(session_id, None)
        ended = [sid for sid, s in self._sessions.items() if s.ended]
        for sid in ended[: max(0, len(ended) - self.keep_ended)]:
            del self._sessions[sid]

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFoundError(f"no session {session_id!r}")
        return session

    def list(self) -> list[Session]:
        return list(self._sessions.values())

    def running_count(self) -> int:
        return sum(1 for s in self._sessions.values() if not s.ended)

    async def stop(self, session_id: str, reason: str = "stopped") -> Session:
        session = self.get(session_id)
        session.stop(reason)
        await session.wait()
        return session

    async def shutdown(self, grace: float) -> None:
        """Refuse new sessions, stop all, wait up to ``grace`` seconds, then cancel."""
        self._closing = True
        for session in self._sessions.values():
            session.stop("shutdown")
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            log.warning("session %s did not end within %.1f s; cancelling", task.get_name(), grace)
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
