"""The VisionStream gRPC service (grpc.aio)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from ..backends.select import BackendOptions, make_backend
from ..cameras import CameraConfig
from ..config import AudioPolicy, Limits, SamplingPolicy
from ..errors import InvalidInputError, VisionStreamError
from ..media.live_source import LiveOptions
from ..media.open import open_source
from ..media.push_source import PushSource
from ..pipeline import Session
from ..redact import redact_url
from ..registry import SessionRegistry
from ..snapshot import analyze_snapshot
from ..v1 import vision_stream_pb2 as pb
from ..v1 import vision_stream_pb2_grpc as pb_grpc
from .access import SourceAccess
from .convert import check_session_id, detection_to_proto, event_to_wire, session_from_proto, stats_to_proto
from .status import abort_with, status_for

log = logging.getLogger(__name__)

_PIXEL_FORMATS = {
    pb.PIXEL_FORMAT_RGB24: "rgb24",
    pb.PIXEL_FORMAT_BGR24: "bgr24",
    pb.PIXEL_FORMAT_GRAY8: "gray8",
    pb.PIXEL_FORMAT_RGBA: "rgba",
    pb.PIXEL_FORMAT_BGRA: "bgra",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ServiceConfig:
    access: SourceAccess = field(default_factory=SourceAccess)
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    audio: AudioPolicy = field(default_factory=AudioPolicy)
    limits: Limits = field(default_factory=Limits)
    backends: BackendOptions = field(default_factory=BackendOptions)
    commentary_interval: float = 10.0
    # Connection hardening for camera URLs opened by Watch (configured
    # cameras carry their own).
    live: LiveOptions = field(default_factory=LiveOptions)


class VisionStreamService(pb_grpc.VisionStreamServicer):
    def __init__(self, config: ServiceConfig, registry: SessionRegistry) -> None:
        self.config = config
        self.registry = registry

    # ------------------------------------------------------------------ Stream

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:  # serialized pb.Event
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty Stream: the first message must be a config")
        if first.WhichOneof("payload") != "config":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the first Stream message must be a config, got {first.WhichOneof('payload') or 'nothing'}",
            )
        source: PushSource | None = None
        try:
            session_id = self._session_id(first.config.session_id)
            settings, sampling, backend_name = session_from_proto(
                first.config, session_id=session_id, source="client stream",
                default_sampling=self.config.sampling, default_interval=self.config.commentary_interval,
            )
            source = PushSource(audio=self.config.audio, limits=self.config.limits)
            session = Session(
                settings=settings, source=source,
                backend=make_backend(backend_name, self.config.backends),
                sampling=sampling, limits=self.config.limits, paced=False, lossless=first.config.lossless,
            )
            self.registry.start(session)
        except VisionStreamError as exc:
            if source is not None:
                source.close()
            await abort_with(context, exc)
            return
        feeder = asyncio.create_task(self._feed_stream(request_iterator, source, session),
                                     name=f"stream-input-{session_id}")
        try:
            # Pre-serialized pb.Event bytes, shared by all subscribers (app.add_service
            # registers a pass-through serializer for the event streams).
            async for wire in session.log.follow_encoded(event_to_wire):
                yield wire
        finally:
            if not feeder.done():
                # The client went away: its input ends here; what it already
                # sent is still processed and stays subscribable.
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
                source.end()
        error = feeder.exception() if feeder.done() and not feeder.cancelled() else None
        if isinstance(error, VisionStreamError):
            await abort_with(context, error)

    async def _feed_stream(
        self, requests: AsyncIterator[pb.StreamRequest], source: PushSource, session: Session
    ) -> None:
        """Client messages into the session; the first bad one ends the input (error kept)."""
        count = 1
        try:
            async for request in requests:
                count += 1
                kind = request.WhichOneof("payload")
                if kind == "frame":
                    await self._put_frame(source, request.frame, f"message {count} (frame)")
                elif kind == "audio":
                    a = request.audio
                    await source.put_pcm(a.pcm_s16le, a.sample_rate, a.channels,
                                         a.media_time if a.HasField("media_time") else None)
                elif kind == "media":
                    await source.put_container(request.media.data)
                elif kind == "prompt":
                    if not request.prompt.text.strip():
                        raise InvalidInputError(f"message {count}: prompt.text is empty")
                    await session.client_prompt(request.prompt.text)
                elif kind == "tool_result":
                    await session.tool_result(*_tool_result(request.tool_result, count))
                elif kind == "config":
                    raise InvalidInputError(f"message {count}: config may only be sent first")
                else:
                    raise InvalidInputError(f"message {count}: empty StreamRequest")
        finally:
            source.end()

    @staticmethod
    async def _put_frame(source: PushSource, frame: pb.VideoFrame, where: str) -> None:
        media_time = frame.media_time if frame.HasField("media_time") else None
        try:
            if frame.format == pb.PIXEL_FORMAT_UNSPECIFIED:
                await source.put_image(frame.data, media_time)
            elif frame.format in _PIXEL_FORMATS:
                await source.put_raw(frame.data, frame.width, frame.height, _PIXEL_FORMATS[frame.format], media_time)
            else:
                raise InvalidInputError(f"frame.format {frame.format} is not a known pixel format")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: {exc.message}") from exc

    # ------------------------------------------------------------------- Watch

    async def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:  # serialized pb.Event
        try:
            target = self.config.access.resolve(request.source)
            session_id = self._session_id(request.config.session_id)
            shown = redact_url(request.source) if "://" in request.source else request.source
            settings, sampling, backend_name = session_from_proto(
                request.config, session_id=session_id, source=shown,
                default_sampling=self.config.sampling, default_interval=self.config.commentary_interval,
            )
            backend = make_backend(backend_name, self.config.backends)
            source = await asyncio.to_thread(open_source, target, audio=self.config.audio, loop=request.loop,
                                             sample_interval=1.0 / sampling.fps, live=self.config.live)
            session = Session(
                settings=settings, source=source, backend=backend, sampling=sampling,
                limits=self.config.limits, paced=not request.fast, lossless=request.fast,
            )
            self.registry.start(session)
        except VisionStreamError as exc:
            await abort_with(context, exc)
            return
        try:
            async for wire in session.log.follow_encoded(event_to_wire):
                yield wire
        finally:
            if not session.ended and not request.detach and session.log.subscribers == 0:
                session.stop("watcher left")

    # --------------------------------------------------------------- Subscribe

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:  # serialized pb.Event
        try:
            session = self.registry.get(request.session_id)
            async for wire in session.log.follow_encoded(event_to_wire, request.after_seq,
                                                         allow_gap=request.allow_gap):
                yield wire
        except VisionStreamError as exc:
            await abort_with(context, exc)

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSessionsResponse:
        return pb.ListSessionsResponse(sessions=[session_info(s) for s in self.registry.list()])

    async def StopSession(
        self, request: pb.StopSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopSessionResponse:
        try:
            session = await self.registry.stop(request.session_id)
        except VisionStreamError as exc:
            await abort_with(context, exc)
        return pb.StopSessionResponse(session=session_info(session))

    async def AnalyzeSnapshot(
        self, request: pb.SnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.SnapshotResponse:
        try:
            image = request.image
            raw = None
            if image.format != pb.PIXEL_FORMAT_UNSPECIFIED:
                if image.format not in _PIXEL_FORMATS:
                    raise InvalidInputError(f"image.format {image.format} is not a known pixel format")
                raw = (_PIXEL_FORMATS[image.format], image.width, image.height)
            result = await analyze_snapshot(
                image.data, raw=raw, prompt=request.prompt, backend=request.backend or "auto",
                model=request.model, options=self.config.backends, sampling=self.config.sampling,
                limits=self.config.limits,
            )
        except VisionStreamError as exc:
            await abort_with(context, exc)
        return pb.SnapshotResponse(
            text=result.text, detections=[detection_to_proto(d) for d in result.detections],
            backend=result.backend, model=result.model,
        )

    # ---------------------------------------------------------------- cameras

    async def start_camera(self, camera: CameraConfig) -> Session:
        """Start a configured camera's session (id = its name); it runs with no client
        attached until the server shuts down (or its source gives up)."""
        self.registry.check_capacity(camera.name)
        source = await asyncio.to_thread(
            open_source, camera.source, audio=self.config.audio if camera.audio else None, loop=camera.loop,
            sample_interval=1.0 / camera.sampling.fps, live=camera.live,
        )
        try:
            session = Session(
                settings=camera.settings(), source=source,
                backend=make_backend(camera.backend, self.config.backends), sampling=camera.sampling,
                limits=self.config.limits, paced=True, lossless=False,
            )
            return self.registry.start(session)
        except BaseException:
            source.close()
            raise

    # ------------------------------------------------------------------ helpers

    def _session_id(self, requested: str) -> str:
        session_id = check_session_id(requested) if requested else self.registry.new_id()
        self.registry.check_capacity(session_id)
        return session_id


def _tool_result(msg: pb.ToolResult, count: int) -> tuple[str, str, dict[str, object]]:
    if not msg.call_id:
        raise InvalidInputError(f"message {count}: tool_result.call_id is required")
    try:
        response = json.loads(msg.response_json) if msg.response_json else {}
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"message {count}: tool_result.response_json is not JSON: {exc}") from exc
    if not isinstance(response, dict):
        raise InvalidInputError(f"message {count}: tool_result.response_json must be a JSON object")
    return msg.call_id, msg.name, response


def session_info(session: Session) -> pb.SessionInfo:
    info = pb.SessionInfo(
        session_id=session.session_id,
        source=session.source.description,
        backend=session.backend_name,
        state=session.state.value,
        last_seq=session.log.last_seq,
        subscribers=session.log.subscribers,
        stats=stats_to_proto(session.stats()),
        last_error=session.last_error,
        source_state=session.source_state,
    )
    info.started_at.FromNanoseconds(int(session.started_at * 1e9))
    if session.next_attempt_at is not None and not session.ended:
        info.next_attempt_at.FromNanoseconds(int(session.next_attempt_at * 1e9))
    return info


__all__ = ["ServiceConfig", "VisionStreamService", "session_info", "status_for"]
