import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB24: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR24: _ClassVar[PixelFormat]
    PIXEL_FORMAT_GRAY8: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGBA: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGRA: _ClassVar[PixelFormat]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_RGB24: PixelFormat
PIXEL_FORMAT_BGR24: PixelFormat
PIXEL_FORMAT_GRAY8: PixelFormat
PIXEL_FORMAT_RGBA: PixelFormat
PIXEL_FORMAT_BGRA: PixelFormat

class SessionConfig(_message.Message):
    __slots__ = ("session_id", "sampling", "backend", "commentary_interval", "persona", "language", "want_audio_out", "functions", "lossless", "model", "voice", "media_resolution", "tools", "max_cost_per_hour", "max_tokens_per_hour", "conditions")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    COMMENTARY_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    WANT_AUDIO_OUT_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    LOSSLESS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    MAX_COST_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_PER_HOUR_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sampling: SamplingConfig
    backend: str
    commentary_interval: float
    persona: str
    language: str
    want_audio_out: bool
    functions: _containers.RepeatedCompositeFieldContainer[FunctionDeclaration]
    lossless: bool
    model: str
    voice: str
    media_resolution: str
    tools: _containers.RepeatedScalarFieldContainer[str]
    max_cost_per_hour: float
    max_tokens_per_hour: int
    conditions: _containers.RepeatedCompositeFieldContainer[WatchCondition]
    def __init__(self, session_id: _Optional[str] = ..., sampling: _Optional[_Union[SamplingConfig, _Mapping]] = ..., backend: _Optional[str] = ..., commentary_interval: _Optional[float] = ..., persona: _Optional[str] = ..., language: _Optional[str] = ..., want_audio_out: _Optional[bool] = ..., functions: _Optional[_Iterable[_Union[FunctionDeclaration, _Mapping]]] = ..., lossless: _Optional[bool] = ..., model: _Optional[str] = ..., voice: _Optional[str] = ..., media_resolution: _Optional[str] = ..., tools: _Optional[_Iterable[str]] = ..., max_cost_per_hour: _Optional[float] = ..., max_tokens_per_hour: _Optional[int] = ..., conditions: _Optional[_Iterable[_Union[WatchCondition, _Mapping]]] = ...) -> None: ...

class WatchCondition(_message.Message):
    __slots__ = ("id", "text", "cooldown_seconds", "min_confidence", "max_triggers", "until", "verify", "notify_resolved")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    VERIFY_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_RESOLVED_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    cooldown_seconds: float
    min_confidence: float
    max_triggers: int
    until: _timestamp_pb2.Timestamp
    verify: bool
    notify_resolved: bool
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., cooldown_seconds: _Optional[float] = ..., min_confidence: _Optional[float] = ..., max_triggers: _Optional[int] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verify: _Optional[bool] = ..., notify_resolved: _Optional[bool] = ...) -> None: ...

class SamplingConfig(_message.Message):
    __slots__ = ("fps", "max_fps", "scene_threshold", "max_side", "jpeg_quality")
    FPS_FIELD_NUMBER: _ClassVar[int]
    MAX_FPS_FIELD_NUMBER: _ClassVar[int]
    SCENE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    JPEG_QUALITY_FIELD_NUMBER: _ClassVar[int]
    fps: float
    max_fps: float
    scene_threshold: float
    max_side: int
    jpeg_quality: int
    def __init__(self, fps: _Optional[float] = ..., max_fps: _Optional[float] = ..., scene_threshold: _Optional[float] = ..., max_side: _Optional[int] = ..., jpeg_quality: _Optional[int] = ...) -> None: ...

class FunctionDeclaration(_message.Message):
    __slots__ = ("name", "description", "parameters_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_json: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json: _Optional[str] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("config", "frame", "audio", "media", "prompt", "tool_result", "conditions")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULT_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    config: SessionConfig
    frame: VideoFrame
    audio: AudioChunk
    media: MediaChunk
    prompt: Prompt
    tool_result: ToolResult
    conditions: SetConditionsRequest
    def __init__(self, config: _Optional[_Union[SessionConfig, _Mapping]] = ..., frame: _Optional[_Union[VideoFrame, _Mapping]] = ..., audio: _Optional[_Union[AudioChunk, _Mapping]] = ..., media: _Optional[_Union[MediaChunk, _Mapping]] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., tool_result: _Optional[_Union[ToolResult, _Mapping]] = ..., conditions: _Optional[_Union[SetConditionsRequest, _Mapping]] = ...) -> None: ...

class VideoFrame(_message.Message):
    __slots__ = ("data", "format", "width", "height", "media_time")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: PixelFormat
    width: int
    height: int
    media_time: float
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., media_time: _Optional[float] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("pcm_s16le", "sample_rate", "channels", "media_time")
    PCM_S16LE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    pcm_s16le: bytes
    sample_rate: int
    channels: int
    media_time: float
    def __init__(self, pcm_s16le: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., media_time: _Optional[float] = ...) -> None: ...

class MediaChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ToolResult(_message.Message):
    __slots__ = ("call_id", "name", "response_json")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_JSON_FIELD_NUMBER: _ClassVar[int]
    call_id: str
    name: str
    response_json: str
    def __init__(self, call_id: _Optional[str] = ..., name: _Optional[str] = ..., response_json: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("source", "config", "fast", "loop", "detach")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FAST_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    source: str
    config: SessionConfig
    fast: bool
    loop: bool
    detach: bool
    def __init__(self, source: _Optional[str] = ..., config: _Optional[_Union[SessionConfig, _Mapping]] = ..., fast: _Optional[bool] = ..., loop: _Optional[bool] = ..., detach: _Optional[bool] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("session_id", "after_seq", "allow_gap", "run_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    ALLOW_GAP_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after_seq: int
    allow_gap: bool
    run_id: str
    def __init__(self, session_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., allow_gap: _Optional[bool] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "source", "backend", "state", "last_seq", "subscribers", "stats", "last_error", "started_at", "next_attempt_at", "source_state", "run_id", "conditions")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_STATE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    source: str
    backend: str
    state: str
    last_seq: int
    subscribers: int
    stats: Stats
    last_error: str
    started_at: _timestamp_pb2.Timestamp
    next_attempt_at: _timestamp_pb2.Timestamp
    source_state: str
    run_id: str
    conditions: _containers.RepeatedCompositeFieldContainer[WatchCondition]
    def __init__(self, session_id: _Optional[str] = ..., source: _Optional[str] = ..., backend: _Optional[str] = ..., state: _Optional[str] = ..., last_seq: _Optional[int] = ..., subscribers: _Optional[int] = ..., stats: _Optional[_Union[Stats, _Mapping]] = ..., last_error: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_state: _Optional[str] = ..., run_id: _Optional[str] = ..., conditions: _Optional[_Iterable[_Union[WatchCondition, _Mapping]]] = ...) -> None: ...

class SetConditionsRequest(_message.Message):
    __slots__ = ("session_id", "conditions")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    conditions: _containers.RepeatedCompositeFieldContainer[WatchCondition]
    def __init__(self, session_id: _Optional[str] = ..., conditions: _Optional[_Iterable[_Union[WatchCondition, _Mapping]]] = ...) -> None: ...

class SetConditionsResponse(_message.Message):
    __slots__ = ("conditions",)
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    conditions: _containers.RepeatedCompositeFieldContainer[WatchCondition]
    def __init__(self, conditions: _Optional[_Iterable[_Union[WatchCondition, _Mapping]]] = ...) -> None: ...

class GetFramesRequest(_message.Message):
    __slots__ = ("session_id", "frame_ids", "from_media_time", "to_media_time", "max_frames")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    FROM_MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frame_ids: _containers.RepeatedScalarFieldContainer[int]
    from_media_time: float
    to_media_time: float
    max_frames: int
    def __init__(self, session_id: _Optional[str] = ..., frame_ids: _Optional[_Iterable[int]] = ..., from_media_time: _Optional[float] = ..., to_media_time: _Optional[float] = ..., max_frames: _Optional[int] = ...) -> None: ...

class SampledFrame(_message.Message):
    __slots__ = ("frame_id", "media_time", "wall_time", "jpeg", "width", "height")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    frame_id: int
    media_time: float
    wall_time: _timestamp_pb2.Timestamp
    jpeg: bytes
    width: int
    height: int
    def __init__(self, frame_id: _Optional[int] = ..., media_time: _Optional[float] = ..., wall_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., jpeg: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class GetFramesResponse(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[SampledFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[SampledFrame, _Mapping]]] = ...) -> None: ...

class ExportClipRequest(_message.Message):
    __slots__ = ("session_id", "from_media_time", "to_media_time")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    from_media_time: float
    to_media_time: float
    def __init__(self, session_id: _Optional[str] = ..., from_media_time: _Optional[float] = ..., to_media_time: _Optional[float] = ...) -> None: ...

class ClipChunk(_message.Message):
    __slots__ = ("data", "mime_type", "from_media_time", "to_media_time", "from_sampled_frames")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    FROM_MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    FROM_SAMPLED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mime_type: str
    from_media_time: float
    to_media_time: float
    from_sampled_frames: bool
    def __init__(self, data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., from_media_time: _Optional[float] = ..., to_media_time: _Optional[float] = ..., from_sampled_frames: _Optional[bool] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ...) -> None: ...

class StopSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class StopSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("image", "prompt", "backend", "model")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    image: VideoFrame
    prompt: str
    backend: str
    model: str
    def __init__(self, image: _Optional[_Union[VideoFrame, _Mapping]] = ..., prompt: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("text", "detections", "backend", "model")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    text: str
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    backend: str
    model: str
    def __init__(self, text: _Optional[str] = ..., detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("session_id", "seq", "wall_time", "media_time", "run_id", "session_started", "commentary", "transcript", "detection", "audio_out", "backend_changed", "stats", "error", "session_ended", "alert")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    WALL_TIME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_STARTED_FIELD_NUMBER: _ClassVar[int]
    COMMENTARY_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OUT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_CHANGED_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SESSION_ENDED_FIELD_NUMBER: _ClassVar[int]
    ALERT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    seq: int
    wall_time: _timestamp_pb2.Timestamp
    media_time: float
    run_id: str
    session_started: SessionStarted
    commentary: Commentary
    transcript: Transcript
    detection: Detection
    audio_out: AudioOut
    backend_changed: BackendChanged
    stats: Stats
    error: Error
    session_ended: SessionEnded
    alert: Alert
    def __init__(self, session_id: _Optional[str] = ..., seq: _Optional[int] = ..., wall_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., media_time: _Optional[float] = ..., run_id: _Optional[str] = ..., session_started: _Optional[_Union[SessionStarted, _Mapping]] = ..., commentary: _Optional[_Union[Commentary, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ..., detection: _Optional[_Union[Detection, _Mapping]] = ..., audio_out: _Optional[_Union[AudioOut, _Mapping]] = ..., backend_changed: _Optional[_Union[BackendChanged, _Mapping]] = ..., stats: _Optional[_Union[Stats, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., session_ended: _Optional[_Union[SessionEnded, _Mapping]] = ..., alert: _Optional[_Union[Alert, _Mapping]] = ...) -> None: ...

class SessionStarted(_message.Message):
    __slots__ = ("source", "backend", "model", "sampling", "commentary_interval")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    COMMENTARY_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    source: str
    backend: str
    model: str
    sampling: SamplingConfig
    commentary_interval: float
    def __init__(self, source: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., sampling: _Optional[_Union[SamplingConfig, _Mapping]] = ..., commentary_interval: _Optional[float] = ...) -> None: ...

class Commentary(_message.Message):
    __slots__ = ("text", "final", "turn_id", "backend", "frame_ids")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    final: bool
    turn_id: str
    backend: str
    frame_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, text: _Optional[str] = ..., final: _Optional[bool] = ..., turn_id: _Optional[str] = ..., backend: _Optional[str] = ..., frame_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("source", "text", "final")
    class Source(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SOURCE_UNSPECIFIED: _ClassVar[Transcript.Source]
        SOURCE_INPUT: _ClassVar[Transcript.Source]
        SOURCE_OUTPUT: _ClassVar[Transcript.Source]
    SOURCE_UNSPECIFIED: Transcript.Source
    SOURCE_INPUT: Transcript.Source
    SOURCE_OUTPUT: Transcript.Source
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    source: Transcript.Source
    text: str
    final: bool
    def __init__(self, source: _Optional[_Union[Transcript.Source, str]] = ..., text: _Optional[str] = ..., final: _Optional[bool] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    width: float
    height: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., width: _Optional[float] = ..., height: _Optional[float] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("label", "description", "severity", "confidence", "region", "backend", "function_name", "call_id", "arguments_json", "frame_ids")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_NAME_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    label: str
    description: str
    severity: str
    confidence: float
    region: Region
    backend: str
    function_name: str
    call_id: str
    arguments_json: str
    frame_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, label: _Optional[str] = ..., description: _Optional[str] = ..., severity: _Optional[str] = ..., confidence: _Optional[float] = ..., region: _Optional[_Union[Region, _Mapping]] = ..., backend: _Optional[str] = ..., function_name: _Optional[str] = ..., call_id: _Optional[str] = ..., arguments_json: _Optional[str] = ..., frame_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("condition_id", "condition", "state", "confidence", "evidence", "backend", "frame_ids", "verification", "severity", "builtin")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Alert.State]
        STATE_FIRED: _ClassVar[Alert.State]
        STATE_RESOLVED: _ClassVar[Alert.State]
    STATE_UNSPECIFIED: Alert.State
    STATE_FIRED: Alert.State
    STATE_RESOLVED: Alert.State
    CONDITION_ID_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    condition_id: str
    condition: str
    state: Alert.State
    confidence: float
    evidence: str
    backend: str
    frame_ids: _containers.RepeatedScalarFieldContainer[int]
    verification: Verification
    severity: str
    builtin: bool
    def __init__(self, condition_id: _Optional[str] = ..., condition: _Optional[str] = ..., state: _Optional[_Union[Alert.State, str]] = ..., confidence: _Optional[float] = ..., evidence: _Optional[str] = ..., backend: _Optional[str] = ..., frame_ids: _Optional[_Iterable[int]] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ..., severity: _Optional[str] = ..., builtin: _Optional[bool] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("requested", "confirmed", "confidence", "evidence", "backend", "model", "latency_seconds")
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    requested: bool
    confirmed: bool
    confidence: float
    evidence: str
    backend: str
    model: str
    latency_seconds: float
    def __init__(self, requested: _Optional[bool] = ..., confirmed: _Optional[bool] = ..., confidence: _Optional[float] = ..., evidence: _Optional[str] = ..., backend: _Optional[str] = ..., model: _Optional[str] = ..., latency_seconds: _Optional[float] = ...) -> None: ...

class AudioOut(_message.Message):
    __slots__ = ("pcm_s16le", "sample_rate", "turn_id")
    PCM_S16LE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    pcm_s16le: bytes
    sample_rate: int
    turn_id: str
    def __init__(self, pcm_s16le: _Optional[bytes] = ..., sample_rate: _Optional[int] = ..., turn_id: _Optional[str] = ...) -> None: ...

class BackendChanged(_message.Message):
    __slots__ = ("from_backend", "to_backend", "reason")
    FROM_BACKEND_FIELD_NUMBER: _ClassVar[int]
    TO_BACKEND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    from_backend: str
    to_backend: str
    reason: str
    def __init__(self, from_backend: _Optional[str] = ..., to_backend: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("frames_in", "frames_sampled", "frames_sent", "frames_dropped", "audio_chunks_in", "audio_chunks_sent", "audio_chunks_dropped", "bad_packets", "prompts_sent", "events", "media_seconds", "encode_ms_p50", "encode_ms_p99", "prompt_tokens", "response_tokens", "reconnects", "fps_in", "fps_out", "source_state", "source_outage_seconds", "source_recoveries", "usage", "estimated_cost_usd", "alerts", "alert_candidates_rejected")
    class UsageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    FRAMES_IN_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SAMPLED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SENT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNKS_IN_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNKS_SENT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHUNKS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    BAD_PACKETS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_SENT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_P50_FIELD_NUMBER: _ClassVar[int]
    ENCODE_MS_P99_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    FPS_IN_FIELD_NUMBER: _ClassVar[int]
    FPS_OUT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_OUTAGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    ALERT_CANDIDATES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    frames_in: int
    frames_sampled: int
    frames_sent: int
    frames_dropped: int
    audio_chunks_in: int
    audio_chunks_sent: int
    audio_chunks_dropped: int
    bad_packets: int
    prompts_sent: int
    events: int
    media_seconds: float
    encode_ms_p50: float
    encode_ms_p99: float
    prompt_tokens: int
    response_tokens: int
    reconnects: int
    fps_in: float
    fps_out: float
    source_state: str
    source_outage_seconds: float
    source_recoveries: int
    usage: _containers.ScalarMap[str, int]
    estimated_cost_usd: float
    alerts: int
    alert_candidates_rejected: int
    def __init__(self, frames_in: _Optional[int] = ..., frames_sampled: _Optional[int] = ..., frames_sent: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., audio_chunks_in: _Optional[int] = ..., audio_chunks_sent: _Optional[int] = ..., audio_chunks_dropped: _Optional[int] = ..., bad_packets: _Optional[int] = ..., prompts_sent: _Optional[int] = ..., events: _Optional[int] = ..., media_seconds: _Optional[float] = ..., encode_ms_p50: _Optional[float] = ..., encode_ms_p99: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., response_tokens: _Optional[int] = ..., reconnects: _Optional[int] = ..., fps_in: _Optional[float] = ..., fps_out: _Optional[float] = ..., source_state: _Optional[str] = ..., source_outage_seconds: _Optional[float] = ..., source_recoveries: _Optional[int] = ..., usage: _Optional[_Mapping[str, int]] = ..., estimated_cost_usd: _Optional[float] = ..., alerts: _Optional[int] = ..., alert_candidates_rejected: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "retryable")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    retryable: bool
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ...) -> None: ...

class SessionEnded(_message.Message):
    __slots__ = ("reason", "totals")
    REASON_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    totals: Stats
    def __init__(self, reason: _Optional[str] = ..., totals: _Optional[_Union[Stats, _Mapping]] = ...) -> None: ...
