"""The server's running sessions: create with a bound, look up, stop, shut down.

Sessions are owned here, not by the RPC that created them: a session survives
its subscribers (and the ``Watch`` caller) leaving. Ended sessions stay
listed (and subscribable, for their retained events) until ``keep_ended``
newer ones have ended.

Each session has an owner: the principal that created it (``None`` for a
configured camera, owned by the server). ``get``/``list``/``stop`` take the
caller's principal: a session it may not see (not its own, not a camera that
names it among ``viewers``, and it is not ``admin``) is reported NOT_FOUND,
exactly like a session that does not exist, so ids of others' sessions are not
revealed. Stopping needs ownership (or ``admin``): a viewer of a camera gets
PERMISSION_DENIED. With authentication off every caller is ANONYMOUS, an admin.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidInputError, LimitExceededError, NotFoundError, PermissionDeniedError
from ..pipeline import Session
from .auth import Principal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ownership:
    """Who a session belongs to (principal name; None = the server) and who else may watch it."""

    owner: str | None
    viewers: frozenset[str] = frozenset()

    def visible_to(self, principal: Principal) -> bool:
        return principal.is_admin or principal.name == self.owner or principal.name in self.viewers

    def stoppable_by(self, principal: Principal) -> bool:
        return principal.is_admin or (self.owner is not None and principal.name == self.owner)


class SessionRegistry:
    def __init__(self, *, max_sessions: int, keep_ended: int = 32) -> None:
        self.max_sessions = max_sessions
        self.keep_ended = keep_ended
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._owners: dict[str, Ownership] = {}
        self._counter = itertools.count(1)
        self._closing = False

    def new_id(self) -> str:
        return f"s{next(self._counter)}-{uuid.uuid4().hex[:8]}"

    def check_capacity(self, session_id: str, principal: Principal | None = None) -> None:
        """Raise before any resource is opened for a session that cannot be started.

        ``principal`` (None: the server itself) asks for ``session_id``. An id
        held by a session the caller could not stop (another principal's,
        running or ended) is refused with the same words either way: the caller
        learns that the id is taken, never whose it is or whether it runs, and
        cannot replace someone else's ended session and its retained events.
        """
        if self._closing:
            raise LimitExceededError("server is shutting down; no new sessions")
        existing = self._sessions.get(session_id)
        if existing is not None:
            ownership = self.ownership(session_id)
            mine = ownership.owner is None if principal is None else ownership.stoppable_by(principal)
            if not mine:
                raise InvalidInputError(f"session id {session_id!r} is taken; choose another (or none)")
            if not existing.ended:
                raise InvalidInputError(f"session {session_id!r} already exists and is running")
        if self.running_count() >= self.max_sessions:
            raise LimitExceededError(f"too many sessions: the server runs at most {self.max_sessions}")

    def start(self, session: Session, *, owner: Principal | None, viewers: Iterable[str] = ()) -> Session:
        """Register and start running ``session`` (run by the registry from now on).

        ``owner``: the principal that created it (None: the server, for configured
        cameras); ``viewers``: other principal names that may see and subscribe to it.
        """
        self.check_capacity(session.session_id, owner)
        self._sessions.pop(session.session_id, None)
        self._sessions[session.session_id] = session
        self._owners[session.session_id] = Ownership(owner.name if owner is not None else None, frozenset(viewers))
        task = asyncio.create_task(session.run(), name=f"session-{session.session_id}")
        self._tasks[session.session_id] = task
        task.add_done_callback(functools.partial(self._on_done, session.session_id))
        return session

    def _on_done(self, session_id: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(session_id, None)
        ended = [sid for sid, s in self._sessions.items() if s.ended]
        for sid in ended[: max(0, len(ended) - self.keep_ended)]:
            del self._sessions[sid]
            self._owners.pop(sid, None)

    def ownership(self, session_id: str) -> Ownership:
        return self._owners.get(session_id, Ownership(None))

    def get(self, session_id: str, *, principal: Principal) -> Session:
        """The session ``principal`` may see; NOT_FOUND alike for missing and hidden ones."""
        session = self._sessions.get(session_id)
        if session is None or not self.ownership(session_id).visible_to(principal):
            raise NotFoundError(f"no session {session_id!r}")
        return session

    def list(self, *, principal: Principal) -> list[Session]:
        """The sessions ``principal`` may see."""
        return [s for sid, s in self._sessions.items() if self.ownership(sid).visible_to(principal)]

    def running_count(self, owner: Principal | None = None) -> int:
        """Running sessions: all of them, or those created by ``owner``."""
        return sum(1 for sid, s in self._sessions.items()
                   if not s.ended and (owner is None or self.ownership(sid).owner == owner.name))

    async def stop(self, session_id: str, reason: str = "stopped", *, principal: Principal) -> Session:
        """Stop a session ``principal`` owns (or any, for admin) and wait for its end."""
        session = self.get(session_id, principal=principal)
        if not self.ownership(session_id).stoppable_by(principal):
            raise PermissionDeniedError(f"session {session_id!r} is not yours to stop")
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
