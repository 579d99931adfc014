"""``GET /v1/sessions/{id}/events``: a session's events as Server-Sent Events.

Each event is ``id: <seq>``, ``event: <payload name>``, ``data: <Event JSON>``.
A reconnecting EventSource sends ``Last-Event-ID`` (the last ``id:`` it saw);
``?after=`` does the same for curl. Either resumes exactly like
``Subscribe(after_seq)``: the next event is seq + 1, or 416 (OUT_OF_RANGE)
when it has left the retention window (``?allowGap=true`` skips ahead).
A ``: ping`` comment every ``KEEPALIVE`` seconds keeps proxies from closing a
quiet stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from ...errors import InvalidInputError, VisionStreamError
from ...events import Event
from ...fleet.follow import stored_sse_frames
from ..auth import current_principal
from .auth import needs
from .errors import as_ours, error_response
from .jsonio import event_json
from .state import SERVICE

__all__ = ["KEEPALIVE", "events", "sse_frame"]

KEEPALIVE = 15.0
_MAX_SEQ_DIGITS = 19

log = logging.getLogger(__name__)


def sse_frame(event: Event) -> bytes:
    """One event in the SSE wire form (its JSON has no newline: MessageToJson, indent=None)."""
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {event_json(event)}\n\n".encode()


def resume_point(request: web.Request) -> int:
    """The seq to resume after: ``Last-Event-ID`` (what EventSource sends), else ``?after=``, else 0."""
    for name, value in (("Last-Event-ID", request.headers.get("Last-Event-ID")),
                        ("after", request.query.get("after"))):
        if value is None or not value.strip():
            continue
        value = value.strip()
        if not value.isdigit() or len(value) > _MAX_SEQ_DIGITS:
            raise InvalidInputError(f"{name} {value[:40]!r} is not an event seq (a whole number >= 0)")
        return int(value)
    return 0


async def _next(events: AsyncIterator[bytes]) -> bytes | None:
    """The next frame, None at the end of the session's log."""
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None


async def _first(events: AsyncIterator[bytes]) -> asyncio.Task[bytes | None]:
    """Start reading: the resume checks (ahead of the log, out of the retention window) run
    at the generator's first step, before it waits; they end the request with a status."""
    task = asyncio.ensure_future(_next(events))
    await asyncio.sleep(0)  # the task's first step runs before this resumes (call_soon order)
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return task


@needs("Subscribe", query_token=True)
async def events(request: web.Request) -> web.StreamResponse:
    service, session_id = request.app[SERVICE], request.match_info["id"]
    allow_gap = request.query.get("allowGap", "").lower() in ("1", "true")
    if service.runs_elsewhere(session_id):  # a fleet: another replica runs it; follow the store
        stream = stored_sse_frames(service.config.store, session_id, resume_point(request), allow_gap,
                                   current_principal())
    else:
        session = service.registry.get(session_id, principal=current_principal())
        stream = session.log.follow_encoded(sse_frame, resume_point(request), allow_gap=allow_gap)
    pending = await _first(stream)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
    })
    await response.prepare(request)
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                await response.write(b": ping\n\n")
                continue
            try:
                frame = pending.result()
            except Exception as exc:  # e.g. this reader fell out of the retention window
                await response.write(_error_frame(as_ours(exc, "SSE events")))
                break
            if frame is None:
                break  # the session ended and everything was sent
            await response.write(frame)
            pending = asyncio.ensure_future(_next(stream))
    except ConnectionResetError:  # the browser went away mid-stream (aiohttp's ClientConnectionResetError)
        log.debug("SSE reader of %s went away", session_id)
    finally:  # also when the client went away (ConnectionResetError, cancellation): release the reader
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        await stream.aclose()  # type: ignore[attr-defined]
    return response


def _error_frame(exc: VisionStreamError) -> bytes:
    """The error that ended the stream once its status line was sent, as a ``stream_error``
    frame (not ``error``: that name is the session's own ``error`` events) holding the
    JSON error body the status would have carried."""
    return f"event: stream_error\ndata: {error_response(exc).text}\n\n".encode()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/sessions/{id}/events", events)
