"""The commands for a server's running sessions: ``sessions``, ``follow``, ``stop``,
and ``watch`` of a configured camera.

Each is a thin layer over :mod:`vision_stream.client` (``list_sessions``,
``subscribe``, ``stop_session``), with the server address, token and TLS flags
read by :func:`~vision_stream.cli.args.connection_from` like every command that
talks to a server. A configured camera's session id is its name in the cameras
file, so ``follow driveway`` and ``watch driveway`` follow the running camera.
Unknown ids are the server's NOT_FOUND (one line, exit code 1).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

from ..backends.factory import BackendOptions
from ..errors import UsageError
from ..v1 import vision_stream_pb2 as pb
from .args import connection_from
from .render import Printer, status_line_for

__all__ = ["cmd_follow", "cmd_sessions", "cmd_stop", "follow_camera"]

# States in which a session no longer runs (SessionInfo.state).
FINISHED_STATES = frozenset({"ended", "failed"})
_SOURCE_CHARS = 48  # of a source in the table


async def cmd_sessions(args: argparse.Namespace, options: BackendOptions) -> int:
    """Print the sessions the caller may see, one table row each."""
    from ..client import list_sessions

    infos = await list_sessions(args.server, **connection_from(args, os.environ))
    for line in session_table(infos, now=time.time()):
        print(line, flush=True)
    return 0


async def cmd_follow(args: argparse.Namespace, options: BackendOptions) -> int:
    """Print a session's events (Subscribe) from ``--after`` on, until it ends or Ctrl-C."""
    if args.after < 0:  # SubscribeRequest.after_seq is a uint64: protobuf would raise ValueError
        raise UsageError(f"--after {args.after}: a seq is 0 or more (0: every retained event)")
    connection = connection_from(args, os.environ)
    session_id = await resolve_session(args.server, args.session, connection)
    return await _follow(args, session_id, connection, after_seq=args.after)


async def cmd_stop(args: argparse.Namespace, options: BackendOptions) -> int:
    """Stop a session (StopSession waits for its end) and print what it did."""
    from ..client import stop_session

    info = await stop_session(args.server, args.session, **connection_from(args, os.environ))
    s = info.stats
    print(f"stopped {info.session_id}: {info.state}, {s.media_seconds:.1f}s of media, {s.frames_sent} frames sent, "
          f"last seq {info.last_seq}", flush=True)
    return 0


async def follow_camera(args: argparse.Namespace) -> int | None:
    """``watch NAME`` where NAME is a session on the server (a configured camera): follow it.

    None when ``args.source`` names no visible session: it is then a path or
    URL for the Watch RPC. Flags that would configure a new session cannot
    change a running one, so they are refused rather than ignored.
    """
    if "/" in args.source or "://" in args.source:  # a session id never holds "/": a path or URL
        return None
    connection = connection_from(args, os.environ)
    if args.source not in await _visible_ids(args.server, connection):
        return None
    given = [flag for flag, on in (("--fast", args.fast), ("--backend", args.backend != "auto"),
                                   ("--commentary-interval", bool(args.commentary_interval))) if on]
    if given:
        raise UsageError(f"{args.source} is a session already running on the server (a configured camera): "
                         f"{', '.join(given)} cannot change it; drop {'them' if len(given) > 1 else 'it'}")
    return await _follow(args, args.source, connection, after_seq=0)


async def resolve_session(server: str, name: str, connection: dict[str, Any]) -> str:
    """The session id ``name`` stands for: a session id (a camera's is its name), else the
    source of exactly one running session (``follow sample.mp4`` after ``watch sample.mp4 --detach``).

    An unknown name is returned as given: Subscribe then answers NOT_FOUND.
    """
    from ..client import list_sessions

    infos = await list_sessions(server, **connection)
    if any(info.session_id == name for info in infos):
        return name
    matches = [info.session_id for info in infos if info.source == name and info.state not in FINISHED_STATES]
    if len(matches) > 1:
        raise UsageError(f"{len(matches)} running sessions read {name[:80]!r} ({', '.join(matches[:5])}): "
                         "follow one by its id")
    return matches[0] if matches else name


async def _visible_ids(server: str, connection: dict[str, Any]) -> set[str]:
    """Ids of the sessions the caller may list; none when its token lacks the subscribe right."""
    import grpc

    from ..client import list_sessions

    try:
        return {info.session_id for info in await list_sessions(server, **connection)}
    except grpc.aio.AioRpcError as exc:
        if exc.code() is grpc.StatusCode.PERMISSION_DENIED:  # a watch-only token: Watch decides
            return set()
        raise


async def _follow(args: argparse.Namespace, session_id: str, connection: dict[str, Any], *, after_seq: int) -> int:
    """Print the events; exit like ``watch``: 1 (one line) when the session ended failed."""
    from ..client import subscribe
    from .commands import session_exit_code  # commands imports this module: a lazy import

    printer = Printer(args.json, progress=status_line_for())
    ended: pb.SessionEnded | None = None
    async for event in subscribe(args.server, session_id, after_seq=after_seq, **connection):
        printer(event)
        if event.HasField("session_ended"):
            ended = event.session_ended
    return session_exit_code(ended, session_id)


def session_table(infos: Sequence[pb.SessionInfo], *, now: float) -> list[str]:
    """The ``sessions`` table: id, source, backend, state, frames sent, age (``now``: epoch seconds)."""
    if not infos:
        return ["no sessions"]
    rows = [("ID", "SOURCE", "BACKEND", "STATE", "FRAMES", "AGE")]
    for info in infos:
        source = info.source if len(info.source) <= _SOURCE_CHARS else info.source[:_SOURCE_CHARS - 1] + "…"
        state = info.state + (f" ({info.source_state})" if info.source_state else "")
        started = info.started_at.ToNanoseconds() / 1e9 if info.HasField("started_at") else now
        # A session only the store knows (ended before a restart, or on another replica) comes
        # without Stats: the store keeps events, not counters, so "-" rather than a false 0.
        frames = str(info.stats.frames_sent) if info.HasField("stats") else "-"
        rows.append((info.session_id, source, info.backend, state, frames, _age(now - started)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _age(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``: a session's age at a glance."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
