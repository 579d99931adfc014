"""The VisionStream gRPC service (grpc.aio): the RPC handlers.

Every handler is wrapped in ``status.rpc_errors``: it raises our errors and
the one mapping turns them into gRPC statuses. Every session (Stream, Watch,
a configured camera) starts through ``session_factory.open_session``, as the
CLI's replay does, and is then owned and run by the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from ..backends.factory import BackendOptions
from ..config import DEFAULT_COMMENTARY_INTERVAL, AudioPolicy, Limits, SamplingPolicy, SessionSettings
from ..errors import InvalidInputError, LimitExceededError, NotFoundError, PermissionDeniedError, VisionStreamError
from ..evidence import FRAMES_OMITTED_TRAILER, clip_source, make_clip, select_frames
from ..evidence import chunks as evidence_chunks
from ..fleet.follow import follow_store
from ..media.push_source import PushSource
from ..media.reconnecting import ConnectionOptions
from ..media.types import MediaSource
from ..net import UrlPolicy
from ..pipeline import Session
from ..pipeline.frame_ring import RingFrame
from ..proto import condition_to_proto, event_to_wire, snapshot_to_proto, stats_to_proto
from ..redact import redact_url, scrub
from ..session_factory import open_session
from ..snapshot import analyze_snapshot
from ..store import EventStore
from ..store import serving as store_serving
from ..v1 import vision_stream_pb2 as pb
from ..v1 import vision_stream_pb2_grpc as pb_grpc
from .access import SourceAccess
from .auth import ANONYMOUS, Principal, current_principal
from .cameras import CameraConfig
from .convert import check_session_id, conditions_from_proto, json_object, session_from_proto
from .limits import ClientLimits, ClientTracker, Slot, client_key
from .registry import SessionRegistry
from .status import internal_error, rpc_errors, status_for
from .stream_input import BadMessage, StreamInput, stream_request_reader

if TYPE_CHECKING:
    from ..fleet import FleetReplica

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
    commentary_interval: float = DEFAULT_COMMENTARY_INTERVAL
    # Connection hardening for camera URLs opened by Watch (configured
    # cameras carry their own).
    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    # Per-client session slots, input timeouts and message rate.
    clients: ClientLimits = field(default_factory=ClientLimits)
    # Where events persist (vision_stream.store; serve opens one): None keeps them in memory only.
    store: EventStore | None = None


class VisionStreamService(pb_grpc.VisionStreamServicer):
    def __init__(self, config: ServiceConfig, registry: SessionRegistry) -> None:
        self.config = config
        self.registry = registry
        # A fleet replica (vision_stream.fleet, set by start_server): sessions other replicas
        # run are followed through the store, and their StopSession forwarded to the owner.
        self.fleet: FleetReplica | None = None
        self.clients = ClientTracker(config.clients, max_sessions=config.limits.max_sessions,
                                     running=registry.running_count)
        # Installed by app.add_service as Stream's request deserializer.
        self.read_stream_request: Callable[[bytes], pb.StreamRequest | BadMessage] = (
            stream_request_reader(config.limits.max_message_bytes))

    # ------------------------------------------------------------------ Stream

    @rpc_errors
    async def Stream(
        self, request_iterator: AsyncIterator[object], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:  # serialized pb.Event
        call = await self.open_push(request_iterator, client_key(current_principal(), context.peer()))
        try:
            # Pre-serialized pb.Event bytes, shared by all subscribers (app.add_service
            # registers a pass-through serializer for the event streams). A reader
            # that falls out of the retention window gets RetentionGapError
            # (OUT_OF_RANGE, like Subscribe).
            async for wire in call.session.log.follow_encoded(event_to_wire):
                yield wire
        finally:
            await call.close()
        call.raise_input_error()

    async def open_push(self, requests: AsyncIterator[object], key: str) -> PushCall:
        """Start a client-pushed session from ``requests`` (the transport-neutral part of
        ``Stream``, shared with the HTTP side's WebSocket ``/v1/stream``).

        ``requests`` yields ``pb.StreamRequest`` or ``BadMessage`` (stream_input.py), the
        first a config; ``key`` is the client the limits count under. Returns once the
        session runs, its input fed by a task until the client's end of input.
        """
        # The slot is taken before the first message is read: a call that never
        # sends its config holds one (until first_message_timeout) like a session.
        slot = self.clients.acquire(key)
        stream_input = StreamInput(requests, clients=self.clients, key=key)
        try:
            with _held(slot):
                first = await stream_input.first()
                settings, sampling, backend_name = self._settings(first.config, "client stream")
                source = PushSource(audio=self.config.audio, limits=self.config.limits)
                session = await self._open(source, settings=settings, backend=backend_name, sampling=sampling,
                                           paced=False, lossless=first.config.lossless, owner=current_principal())
                _bind(slot, session)
        except VisionStreamError as exc:
            log.info("Stream from %s refused: %s", key, exc.message)
            raise
        feeder = asyncio.create_task(self._feed_stream(stream_input, source, session),
                                     name=f"stream-input-{session.session_id}")
        return PushCall(session, source, feeder)

    async def _feed_stream(self, stream_input: StreamInput, source: PushSource, session: Session) -> None:
        """Client messages into the session; the first bad one ends the input.

        Its error is recorded in the session's log (an ``error`` event) before
        the input ends, and re-raised for the call's status; what was accepted
        before it is still processed.
        """
        try:
            while (request := await stream_input.next()) is not None:
                await self._handle(request, stream_input.count, source, session)
        except VisionStreamError as exc:
            log.info("session %s: client input failed: %s", session.session_id, exc.message)
            session.input_failed(exc)
            raise
        except Exception as exc:  # a bug: reported in the session and the status, never swallowed
            error = internal_error(exc, f"session {session.session_id} input")
            session.input_failed(error)
            raise error from exc
        finally:
            source.end()

    async def _handle(self, request: pb.StreamRequest, count: int, source: PushSource, session: Session) -> None:
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
        elif kind == "conditions":
            session.set_conditions(conditions_from_proto(request.conditions.conditions,
                                                         f"message {count}: conditions"))
        elif kind == "config":
            raise InvalidInputError(f"message {count}: config may only be sent first")
        else:
            raise InvalidInputError(f"message {count}: empty StreamRequest")

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

    @rpc_errors
    async def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:  # serialized pb.Event
        session = await self.open_watch(request, client_key(current_principal(), context.peer()))
        try:
            async for wire in session.log.follow_encoded(event_to_wire):
                yield wire
        finally:
            if not session.ended and not request.detach and session.log.subscribers == 0:
                session.stop("watcher left")

    async def open_watch(self, request: pb.WatchRequest, key: str) -> Session:
        """Start a session on a server-side source for the current principal (``Watch``,
        and the HTTP side's ``POST /v1/sessions``); ``key`` is the client the limits count under."""
        slot = self.clients.acquire(key)
        with _held(slot):
            target = self.config.access.resolve(request.source)
            shown = redact_url(request.source) if "://" in request.source else request.source
            settings, sampling, backend_name = self._settings(request.config, shown)
            session = await self._open(
                target, settings=settings, backend=backend_name, sampling=sampling, paced=not request.fast,
                lossless=request.fast, owner=current_principal(), audio=self.config.audio, loop=request.loop,
                connection=self.config.connection, url_policy=self.config.access.url_policy,
            )
            _bind(slot, session)
        return session

    # --------------------------------------------------------------- Subscribe

    @rpc_errors
    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:  # serialized pb.Event
        principal = current_principal()
        store = self.config.store
        try:
            if self.runs_elsewhere(request.session_id):
                raise NotFoundError(f"no session {request.session_id!r} here")
            session = self.registry.get(request.session_id, principal=principal)
        except NotFoundError:
            if store is None:
                raise
            if self.fleet is not None:  # any replica follows any session through the shared store
                async for wire in follow_store(store, request, principal):
                    yield wire
                return
            # Not running here: an ended session (e.g. before a restart) replays from the store.
            async for wire in store_serving.subscribe_ended(store, request, principal):
                yield wire
            return
        # The run check (a stale run's position: FAILED_PRECONDITION naming both), then
        # the store below the in-memory tail, then live.
        async for wire in store_serving.follow(session.log, request):
            yield wire

    @rpc_errors
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSessionsResponse:
        return await self.list_sessions()

    async def list_sessions(self) -> pb.ListSessionsResponse:
        """The sessions the current principal may see (``ListSessions`` and ``GET /v1/sessions``):
        running here, and (with a store) those only the store knows, in a fleet those others run."""
        visible = [s for s in self.registry.list(principal=current_principal())
                   if not self.runs_elsewhere(s.session_id)]
        infos = [session_info(s) for s in visible]
        if self.config.store is not None:  # and the ended sessions only the store knows
            infos += await store_serving.ended_infos(self.config.store, current_principal(),
                                                     (s.session_id for s in visible), fleet=self.fleet is not None)
        return pb.ListSessionsResponse(sessions=infos)

    @rpc_errors
    async def StopSession(
        self, request: pb.StopSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopSessionResponse:
        return await self.stop_session(request)

    async def stop_session(self, request: pb.StopSessionRequest) -> pb.StopSessionResponse:
        """Stop a session (``StopSession`` and ``DELETE /v1/sessions/{id}``); in a fleet, a camera
        another replica runs is stopped by its owner."""
        if self.fleet is not None and self.runs_elsewhere(request.session_id):
            # A camera another replica owns: the request goes to its owner (fleet/replica.py).
            return pb.StopSessionResponse(session=await self.fleet.stop_remote(request.session_id,
                                                                               current_principal()))
        session = await self.registry.stop(request.session_id, principal=current_principal())
        if self.fleet is not None:  # its lease stays, marked stopped: no replica restarts it
            self.fleet.mark_stopped(request.session_id)
        return pb.StopSessionResponse(session=session_info(session))

    def runs_elsewhere(self, session_id: str) -> bool:
        """In a fleet: a configured camera this replica does not run now (another may: the store knows)."""
        if self.fleet is None or self.fleet.runs_here(session_id) or session_id not in self.fleet.cameras:
            return False
        with contextlib.suppress(NotFoundError):
            return self.registry.get(session_id, principal=ANONYMOUS).ended
        return True

    # ---------------------------------------------------------------- evidence

    @rpc_errors
    async def GetFrames(
        self, request: pb.GetFramesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFramesResponse:
        """The sampled JPEGs by id (events' frame_ids) or media span (evidence.py).
        The answer stays within the server's message size: frames that matched
        but did not fit are counted in the ``vision-stream-frames-omitted`` trailer."""
        session = self.registry.get(request.session_id, principal=current_principal())
        answer = select_frames(session.frames, ids=list(request.frame_ids), start=request.from_media_time,
                               end=request.to_media_time, max_frames=request.max_frames,
                               max_bytes=self.config.limits.max_message_bytes - 1024)
        if answer.omitted:
            context.set_trailing_metadata(((FRAMES_OMITTED_TRAILER, str(answer.omitted)),))
        return pb.GetFramesResponse(frames=[_frame_to_proto(f) for f in answer.frames])

    @rpc_errors
    async def ExportClip(
        self, request: pb.ExportClipRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClipChunk]:
        """An MP4 of media ``[from, to]`` (``to`` 0: up to the newest), remuxed from the
        source's packets or made from the sampled JPEGs (evidence.py), in chunks."""
        session = self.registry.get(request.session_id, principal=current_principal())
        source = clip_source(session.frames, session.packets, request.from_media_time, request.to_media_time)
        clip = await asyncio.to_thread(make_clip, source)  # muxing touches every byte: off the loop
        for i, data in enumerate(evidence_chunks(clip.data)):
            if i == 0:
                yield pb.ClipChunk(data=data, mime_type=clip.mime_type, from_media_time=clip.start,
                                   to_media_time=clip.end, from_sampled_frames=clip.from_sampled_frames)
            else:
                yield pb.ClipChunk(data=data)

    @rpc_errors
    async def SetConditions(
        self, request: pb.SetConditionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetConditionsResponse:
        """Replace a running session's watch conditions: its owner's (or an admin's) to change."""
        principal = current_principal()
        session = self.registry.get(request.session_id, principal=principal)
        if not self.registry.ownership(request.session_id).stoppable_by(principal):
            raise PermissionDeniedError(f"session {request.session_id!r} is not yours to change")
        if session.ended:
            raise InvalidInputError(f"session {request.session_id!r} has ended")
        items = session.set_conditions(conditions_from_proto(request.conditions, "conditions"))
        return pb.SetConditionsResponse(conditions=[condition_to_proto(c) for c in items])

    @rpc_errors
    async def AnalyzeSnapshot(
        self, request: pb.SnapshotRequest, context: grpc.aio.ServicerContext
    ) -> pb.SnapshotResponse:
        return await self.analyze_snapshot(request)

    async def analyze_snapshot(self, request: pb.SnapshotRequest) -> pb.SnapshotResponse:
        """One image in, one answer out (``AnalyzeSnapshot`` and ``POST /v1/snapshots:analyze``)."""
        size, limit = request.ByteSize(), self.config.limits.max_message_bytes
        if size > limit:  # gRPC's own bound is RECEIVE_SLACK_BYTES higher (stream_input)
            raise LimitExceededError(f"the request is {size} bytes, over the server's {limit}-byte message limit")
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
        return snapshot_to_proto(result)

    # ---------------------------------------------------------------- cameras

    async def start_camera(self, camera: CameraConfig) -> Session:
        """Start a configured camera's session (id = its name); it runs with no client
        attached until the server shuts down (or its source gives up)."""
        self.registry.check_capacity(camera.name)
        return await self._open(
            camera.source, settings=camera.settings(), backend=camera.backend, sampling=camera.sampling,
            paced=True, lossless=False, owner=None, viewers=camera.viewers, resume=True,
            audio=self.config.audio if camera.audio else None, loop=camera.loop, connection=camera.connection,
            # The operator named this URL; its redirects and HLS entries still obey --allow-host.
            url_policy=self.config.access.url_policy.admitting(camera.source),
            limits=camera.limits(self.config.limits), options=camera.backend_options(self.config.backends),
        )

    # ------------------------------------------------------------------ helpers

    def _settings(self, config: pb.SessionConfig, shown: str) -> tuple[SessionSettings, SamplingPolicy, str]:
        """A client's SessionConfig, validated, with this server's defaults, for a
        session id that is free for the caller (checked before any source opens)."""
        requested = config.session_id
        session_id = check_session_id(requested) if requested else self.registry.new_id()
        self.registry.check_capacity(session_id, current_principal())
        return session_from_proto(config, session_id=session_id, source=shown,
                                  default_sampling=self.config.sampling,
                                  default_interval=self.config.commentary_interval)

    async def _open(
        self, source: str | MediaSource, *, settings: SessionSettings, backend: str, sampling: SamplingPolicy,
        paced: bool, lossless: bool, owner: Principal | None, viewers: Iterable[str] = (),
        audio: AudioPolicy | None = None, loop: bool = False, connection: ConnectionOptions | None = None,
        url_policy: UrlPolicy | None = None, resume: bool = False, limits: Limits | None = None,
        options: BackendOptions | None = None,
    ) -> Session:
        """The one start path of this server's sessions: ``open_session`` with the
        server's backends and limits, handed to the registry (which runs it).

        With a store, the session's run is decided first: ``resume`` (a configured
        camera) continues the run the store kept; anything else starts a new run."""
        start: Callable[[Session], object] = functools.partial(self.registry.start, owner=owner, viewers=viewers)
        store = self.config.store
        if store is not None:
            # What ListSessions shows after a restart: the redacted description, never a resolved path.
            shown = settings.source_description or (source if isinstance(source, str) else "")
            sink = await store_serving.begin(store, settings.session_id, resume=resume, owner=owner,
                                             viewers=viewers, source=redact_url(shown), backend=backend)
            start = store_serving.persisting(start, sink)
            if resume:  # the camera's Gemini session too: the stored handle and summary
                settings, start = await store_serving.continuing(store, settings, start)
        # In a fleet, a session that may use Live first takes a fleet-wide slot (--fleet-live-sessions).
        release = await self.fleet.live_slot(backend) if self.fleet is not None else None
        try:
            session = await open_session(
                source, settings=settings, backend=backend, options=options or self.config.backends, sampling=sampling,
                limits=limits or self.config.limits, paced=paced, lossless=lossless, audio=audio, loop=loop,
                connection=connection, url_policy=url_policy, start=start,
            )
            if release is not None:
                session.on_end(release)
            return session
        except BaseException as exc:
            if release is not None:
                release()
            if store is not None:  # the run began but the session never started: the store says so
                store.end_session(settings.session_id, f"failed: {type(exc).__name__}")
            raise


@dataclass(slots=True)
class PushCall:
    """A running client-pushed session and the task feeding it the client's messages."""

    session: Session
    source: PushSource
    feeder: asyncio.Task[None]

    async def close(self) -> None:
        """The client went away (or the events ended): its input ends here; what it
        already sent is still processed and stays subscribable."""
        if not self.feeder.done():
            self.feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.feeder
            self.source.end()

    def raise_input_error(self) -> None:
        """Re-raise the error that ended the client's input, for the call's status."""
        if self.feeder.done() and not self.feeder.cancelled():
            error = self.feeder.exception()
            if error is not None:
                raise error


def _tool_result(msg: pb.ToolResult, count: int) -> tuple[str, str, dict[str, object]]:
    if not msg.call_id:
        raise InvalidInputError(f"message {count}: tool_result.call_id is required")
    response = json_object(msg.response_json, f"message {count}: tool_result.response_json")
    return msg.call_id, msg.name, response


@contextlib.contextmanager
def _held(slot: Slot) -> Iterator[None]:
    """The call's slot goes back if its session does not start."""
    try:
        yield
    except BaseException:
        slot.release()
        raise


def _bind(slot: Slot, session: Session) -> None:
    """The call's slot now belongs to its running session: given back when it ends."""
    slot.bind()
    session.on_end(slot.release)


def _frame_to_proto(frame: RingFrame) -> pb.SampledFrame:
    message = pb.SampledFrame(frame_id=frame.frame_id, media_time=frame.media_time, jpeg=frame.jpeg,
                              width=frame.width, height=frame.height)
    message.wall_time.FromNanoseconds(int(frame.wall_time * 1e9))
    return message


def session_info(session: Session) -> pb.SessionInfo:
    info = pb.SessionInfo(
        session_id=session.session_id,
        source=session.source.description,
        backend=session.backend_name,
        state=session.state.value,
        last_seq=session.log.last_seq,
        subscribers=session.log.subscribers,
        stats=stats_to_proto(session.stats()),
        last_error=scrub(session.last_error),
        source_state=session.source_state,
        run_id=session.log.run_id,
        conditions=[condition_to_proto(c) for c in session.conditions.conditions],
    )
    info.started_at.FromNanoseconds(int(session.started_at * 1e9))
    if session.next_attempt_at is not None and not session.ended:
        info.next_attempt_at.FromNanoseconds(int(session.next_attempt_at * 1e9))
    return info


__all__ = ["PushCall", "ServiceConfig", "VisionStreamService", "session_info", "status_for"]
