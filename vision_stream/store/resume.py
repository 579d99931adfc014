"""Subscribe's resume rules on a store: the run check, and replaying an ended session.

A resume position is (run_id, after_seq). The same run (or none given):
resume after after_seq. Another run: the session restarted without its events,
so after_seq means nothing in the new run; that is an error naming both runs
(FAILED_PRECONDITION), or with ``allow_gap`` the new run from its beginning:
the client sees the new run_id on every event, never a silent skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import ResumeAheadError, StaleRunError
from ..events import replay_history
from .base import READ_PAGE, EventStore, SessionRecord


def resume_after(session_id: str, after_seq: int, run_id: str, current_run: str, *, allow_gap: bool,
                 fork: str | None = None) -> int:
    """The seq to resume after in the session's current run. ``fork`` (``old:seq:new``, a fleet
    takeover: store/nats.py ``_fork``): the new run continues the old one's stored events, so a
    position of the old run at or below ``seq`` resumes as it is."""
    if not run_id or not current_run or run_id == current_run:
        return after_seq
    if fork_covers(fork, run_id, after_seq, current_run):
        return after_seq
    if allow_gap:
        return 0
    raise StaleRunError(session_id, run_id, current_run)


def fork_covers(fork: str | None, run_id: str, after_seq: int, current_run: str) -> bool:
    """Whether ``(run_id, after_seq)`` lies on the stored part ``current_run`` forked from."""
    old, _, rest = (fork or "").partition(":")
    seq, _, new = rest.partition(":")
    return bool(old) and old == run_id and new == current_run and seq.isdigit() and after_seq <= int(seq)


async def replay_ended(store: EventStore, record: SessionRecord, after_seq: int, run_id: str,
                       *, allow_gap: bool) -> AsyncIterator[bytes]:
    """An ended session's stored events (one no process runs now, e.g. after a restart)."""
    after = resume_after(record.session_id, after_seq, run_id, record.run_id, allow_gap=allow_gap,
                         fork=await store.get_state(record.session_id, "fork"))
    if after > record.last_seq:
        raise ResumeAheadError(after, record.last_seq)

    async def read(cursor: int, limit: int) -> list[tuple[int, bytes]]:
        return [(e.seq, e.data) for e in await store.read(record.session_id, cursor, limit)]

    async for _seq, data in replay_history(read, after, record.last_seq, allow_gap=allow_gap, page=READ_PAGE):
        yield data
