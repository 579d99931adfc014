"""The unary routes: sessions, snapshots, frames; the same service calls as the RPCs."""

from __future__ import annotations

from aiohttp import web

from ...errors import InvalidInputError, NotFoundError
from ...pipeline import Session
from ...pipeline.frame_ring import RingFrame
from ...v1 import vision_stream_pb2 as pb
from ..auth import current_principal
from ..service import session_info
from .auth import http_client_key, needs
from .jsonio import read_message, to_json
from .state import SERVICE

__all__ = ["add_routes"]


def _json(message: pb.SessionInfo | pb.ListSessionsResponse | pb.StopSessionResponse | pb.SnapshotResponse,
          status: int = 200) -> web.Response:
    return web.Response(status=status, text=to_json(message), content_type="application/json")


def _session(request: web.Request) -> Session:
    """The path's session, if the caller may see it (NotFound otherwise, as Subscribe)."""
    return request.app[SERVICE].registry.get(request.match_info["id"], principal=current_principal())


@needs("ListSessions")
async def list_sessions(request: web.Request) -> web.Response:
    return _json(await request.app[SERVICE].list_sessions())  # as ListSessions (the store's too)


@needs("Subscribe")
async def get_session(request: web.Request) -> web.Response:
    return _json(session_info(_session(request)))


@needs("StopSession")
async def stop_session(request: web.Request) -> web.Response:
    # As StopSession (in a fleet the owner of a camera stops it).
    return _json(await request.app[SERVICE].stop_session(pb.StopSessionRequest(session_id=request.match_info["id"])))


@needs("Watch")
async def start_session(request: web.Request) -> web.Response:
    """A Watch session owned by the caller; unlike a Watch call nothing holds it open,
    so it runs until stopped (DELETE) or until its source ends."""
    watch = await read_message(request, pb.WatchRequest())
    service = request.app[SERVICE]
    session = await service.open_watch(watch, http_client_key(request, current_principal()))
    response = _json(session_info(session), status=201)
    response.headers["Location"] = f"/v1/sessions/{session.session_id}"
    return response


@needs("AnalyzeSnapshot")
async def analyze_snapshot(request: web.Request) -> web.Response:
    snapshot = await read_message(request, pb.SnapshotRequest())
    return _json(await request.app[SERVICE].analyze_snapshot(snapshot))


def _jpeg(frame: RingFrame) -> web.Response:
    return web.Response(body=frame.jpeg, content_type="image/jpeg", headers={
        "X-Frame-Id": str(frame.frame_id),
        "X-Media-Time": f"{frame.media_time:.6f}",
        "Cache-Control": "no-store",  # "latest" changes every sample
    })


@needs("Subscribe")
async def latest_frame(request: web.Request) -> web.Response:
    session = _session(request)
    frame = session.frames.latest()
    if frame is None:
        raise NotFoundError(f"session {session.session_id!r} has sent no frame to its model yet")
    return _jpeg(frame)


@needs("Subscribe")
async def frame_by_id(request: web.Request) -> web.Response:
    session = _session(request)
    text = request.match_info["frame_id"]
    if not text.isdigit() or len(text) > 20:
        raise InvalidInputError(f"frame id {text[:40]!r} is not a frame number (use /frames/latest or an id "
                                "from an event)")
    frame = session.frames.get(int(text))
    if frame is None:
        raise NotFoundError(f"session {session.session_id!r} no longer holds frame {text} (it keeps the newest "
                            f"{session.frames.max_frames})")
    return _jpeg(frame)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/sessions", list_sessions)
    app.router.add_post("/v1/sessions", start_session)
    app.router.add_get("/v1/sessions/{id}", get_session)
    app.router.add_delete("/v1/sessions/{id}", stop_session)
    app.router.add_get("/v1/sessions/{id}/frames/latest", latest_frame)
    app.router.add_get("/v1/sessions/{id}/frames/{frame_id}", frame_by_id)
    app.router.add_post("/v1/snapshots:analyze", analyze_snapshot)
