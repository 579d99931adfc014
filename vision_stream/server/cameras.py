"""Configured cameras: a TOML file of named sessions the server runs with no client.

Example ``cameras.toml``::

    # Optional: values every camera starts from.
    [defaults]
    backend = "auto"                  # auto, live, rest, local
    viewers = ["alice"]               # token names (--auth-tokens) that may see every camera
    commentary_interval = 10.0        # seconds
    [defaults.sampling]
    fps = 1.0
    max_fps = 2.0
    [defaults.connection]
    transport = "tcp"                 # tcp or udp (RTSP)
    open_timeout = 10.0               # seconds
    read_timeout = 5.0                # seconds without data = disconnected
    stall_timeout = 10.0              # seconds without a decoded frame = stalled
    [defaults.reconnect]
    initial_delay = 0.5               # seconds
    max_delay = 30.0                  # seconds
    max_attempts = 0                  # 0 = retry forever

    [cameras.driveway]                # the name is the session id clients Subscribe to
    source = "rtsp://viewer@192.168.1.20:554/stream1"
    password_env = "DRIVEWAY_PASSWORD"   # password from the environment, kept out of the file
    persona = "You watch a driveway. Report vehicles and people."
    commentary_interval = 15.0
    max_cost_per_hour = 2.0           # US dollars per hour of video (also max_tokens_per_hour)
    evidence_minutes = 30.0           # frames and video kept for GetFrames/ExportClip (also evidence_mb)
    [cameras.driveway.sampling]
    fps = 0.5
    [[cameras.driveway.tools]]
    name = "report_vehicle"
    description = "A vehicle arrived or left."
    parameters = { type = "object", properties = { plate = { type = "string" } } }

    [cameras.lobby]
    source = "http://10.0.0.7/axis-cgi/mjpg/video.cgi"
    backend = "local"
    viewers = ["alice", "bob"]        # replaces the defaults' list for this camera

    [cameras.desk]
    source = "/dev/video0"
    verify_model = "gemini-2.5-pro"   # REST model of second opinions (verify = true); default serve's
    [[cameras.desk.conditions]]       # alerts (vision_stream.conditions); text required
    id = "someone"
    text = "a person in the left half"
    cooldown = 60.0                   # seconds
    notify_resolved = true
    [cameras.desk.health]             # built-in health alerts (on for cameras; enabled = false: off)
    no_frames_after = 10.0            # seconds; 0 turns one off
    reconnecting_after = 10.0
    fps_min = 5.0                     # fps_min/fps_max 0: no bound

Sources: ``rtsp://``, ``rtsps://``, ``http(s)://`` URLs, local devices
(``/dev/videoN``, ``device:N``) and files (relative to the config file; add
``loop = true`` to run a recording as a camera). Every problem is reported as
one :class:`CameraConfigError` naming the file, the key and what is wrong.

``viewers``: with ``--auth-tokens``, the token names that may see a camera in
ListSessions and Subscribe to it (besides ``admin`` tokens, which see all). A
camera with no viewers (here or in ``[defaults]``) is for admins only. Only
admins may stop a camera. Without tokens every client sees every camera.
Parsing reads no environment itself: the caller passes ``env`` (read once at
the entry point).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..backends.factory import BACKEND_NAMES, BackendOptions
from ..conditions.model import Condition, HealthSettings, check_conditions, condition_from_mapping
from ..config import (
    DEFAULT_COMMENTARY_INTERVAL,
    DEFAULT_LANGUAGE,
    FunctionSpec,
    Limits,
    SamplingPolicy,
    SessionSettings,
)
from ..config_tables import TableParser
from ..errors import CameraConfigError, UsageError
from ..media.device import is_device_spec
from ..media.reconnecting import ConnectionOptions
from ..redact import redact_url
from ..retry import RetryPolicy
from ..sinks.config import SinkConfig, parse_sinks

__all__ = ["CameraConfig", "load_cameras", "parse_cameras"]

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
MAX_CAMERAS = 256

_CAMERA_KEYS = {
    "source", "password_env", "loop", "backend", "commentary_interval", "persona", "language", "model",
    "verify_model", "audio", "sampling", "connection", "reconnect", "tools", "viewers", "sinks", "conditions", "health",
    "max_cost_per_hour", "max_tokens_per_hour", "evidence_minutes", "evidence_mb",
}
_DEFAULT_KEYS = _CAMERA_KEYS - {"source", "password_env", "loop", "tools", "sinks", "conditions"}
_HEALTH_KEYS = {"enabled", "no_frames_after", "reconnecting_after", "fps_min", "fps_max", "backend_down",
                "budget_exhausted"}
_SAMPLING_KEYS = {"fps", "max_fps", "scene_threshold", "probe_fps", "max_side", "jpeg_quality"}
_CONNECTION_KEYS = {"transport", "open_timeout", "read_timeout", "stall_timeout"}
_RECONNECT_KEYS = {"initial_delay", "max_delay", "multiplier", "jitter", "max_attempts", "stable_after"}
_TOOL_KEYS = {"name", "description", "parameters"}
# Camera keys read as is (with their TOML type), defaulting to CameraConfig's.
_OPTIONAL_KEYS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("commentary_interval", float), ("persona", str), ("language", str), ("model", str), ("audio", bool),
    ("verify_model", str),  # the REST model of second opinions (conditions/verify.py; "": serve's)
    ("max_cost_per_hour", (int, float)), ("max_tokens_per_hour", int),  # the budget (pipeline/budget.py)
    ("evidence_minutes", (int, float)), ("evidence_mb", (int, float)),  # Limits.with_evidence
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CameraConfig:
    """One configured camera (a session started at boot, id = ``name``).

    ``source`` may carry credentials: it is left out of ``repr``; show
    ``description`` (redacted) instead.
    """

    name: str
    source: str = field(repr=False)
    description: str
    backend: str = "auto"
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    commentary_interval: float = DEFAULT_COMMENTARY_INTERVAL
    persona: str = ""
    language: str = DEFAULT_LANGUAGE
    model: str = ""
    verify_model: str = ""  # second opinions on verify conditions; "": serve's --verify-model
    functions: tuple[FunctionSpec, ...] = ()
    audio: bool = True
    loop: bool = False
    viewers: tuple[str, ...] = ()  # token names allowed to see it (besides admins)
    sinks: tuple[SinkConfig, ...] = ()  # [[cameras.NAME.sinks]]: webhooks/MQTT for this camera (sinks/config.py)
    conditions: tuple[Condition, ...] = ()  # [[cameras.NAME.conditions]] (vision_stream.conditions)
    # [cameras.NAME.health] / [defaults.health]: built-in health alerts, on for cameras by default.
    health: HealthSettings = field(default_factory=lambda: HealthSettings(enabled=True))
    max_cost_per_hour: float = 0.0  # US dollars per hour of media; 0: no budget
    max_tokens_per_hour: int = 0
    # The evidence ring (GetFrames/ExportClip): None keeps serve's --evidence-minutes/--evidence-mb.
    evidence_minutes: float | None = None
    evidence_mb: float | None = None

    def limits(self, server: Limits) -> Limits:
        """The server's limits with this camera's evidence bounds."""
        return server.with_evidence(minutes=self.evidence_minutes, megabytes=self.evidence_mb)

    def backend_options(self, server: BackendOptions) -> BackendOptions:
        """The server's backend options with this camera's second-opinion model."""
        return replace(server, verify_model=self.verify_model) if self.verify_model else server

    def settings(self) -> SessionSettings:
        return SessionSettings(
            session_id=self.name, source_description=self.description,
            commentary_interval=self.commentary_interval, persona=self.persona, language=self.language,
            functions=self.functions, model=self.model, conditions=self.conditions, health=self.health,
            max_cost_per_hour=float(self.max_cost_per_hour), max_tokens_per_hour=self.max_tokens_per_hour,
        )


def load_cameras(path: Path, *, env: Mapping[str, str] | None = None) -> tuple[CameraConfig, ...]:
    """Read and validate ``path``; raises CameraConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CameraConfigError(f"{path}: cannot read the cameras file: {exc.strerror or exc}") from exc
    return parse_cameras(text, origin=path, env=env or {})


def parse_cameras(text: str, *, origin: Path, env: Mapping[str, str]) -> tuple[CameraConfig, ...]:
    """Validate the TOML ``text`` of a cameras file read from ``origin``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CameraConfigError(f"{origin}: not valid TOML: {exc}") from exc
    return _Parser(origin, env).cameras(doc)


class _Parser(TableParser):
    def cameras(self, doc: dict[str, Any]) -> tuple[CameraConfig, ...]:
        self.keys(doc, "", {"defaults", "cameras", "sinks"})
        parse_sinks(doc.get("sinks", []), where="sinks", origin=self.origin, env=self.env)  # validated here too
        defaults = self.table(doc, "defaults", "defaults")
        self.keys(defaults, "defaults", _DEFAULT_KEYS)
        cameras = self.table(doc, "cameras", "cameras")
        if not cameras:
            raise self.error("cameras", "no cameras configured (add a [cameras.NAME] table with a source)")
        if len(cameras) > MAX_CAMERAS:
            raise self.error("cameras", f"at most {MAX_CAMERAS} cameras, got {len(cameras)}")
        return tuple(self.camera(name, body, defaults) for name, body in cameras.items())

    # ---------------------------------------------------------------- pieces

    def merged(self, camera: dict[str, Any], defaults: dict[str, Any], key: str, where: str,
               known: set[str]) -> dict[str, Any]:
        base = self.table(defaults, key, f"defaults.{key}")
        self.keys(base, f"defaults.{key}", known)
        own = self.table(camera, key, f"{where}.{key}")
        self.keys(own, f"{where}.{key}", known)
        return {**base, **own}

    def camera(self, name: str, body: Any, defaults: dict[str, Any]) -> CameraConfig:
        where = f"cameras.{name}"
        if not isinstance(body, dict):
            raise self.error(where, "must be a table with at least a source")
        if not _NAME.fullmatch(name):
            raise self.error(where, "camera names are session ids: 1-64 letters, digits, '.', '_' or '-'")
        self.keys(body, where, _CAMERA_KEYS)
        merged = {**defaults, **body}

        def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
            place = where if key in body else "defaults"
            return self.value(merged, key, place, kind, default)

        source = self.source(body, where)
        backend = get("backend", str, "auto")
        if backend not in BACKEND_NAMES:
            raise self.error(f"{where}.backend", f"must be one of {', '.join(BACKEND_NAMES)}, got {backend!r}")
        sampling = self.sampling(self.merged(body, defaults, "sampling", where, _SAMPLING_KEYS), where)
        connection = self.connection(body, defaults, where)
        functions = self.tools(body, where)
        conditions = self.conditions(body, where)
        health = self.health(self.merged(body, defaults, "health", where, _HEALTH_KEYS), where)
        loop = self.value(body, "loop", where, bool, False)
        viewers = self.viewers(get("viewers", list, []), where if "viewers" in body else "defaults")
        sinks = parse_sinks(body.get("sinks", []), where=f"{where}.sinks", origin=self.origin, env=self.env,
                            camera=name)
        try:
            # Keys in neither the camera nor [defaults] keep CameraConfig's defaults.
            given = {key: get(key, kind, None) for key, kind in _OPTIONAL_KEYS}
            camera = CameraConfig(
                name=name, source=source, description=_describe(source), backend=backend, sampling=sampling,
                connection=connection, functions=functions, loop=loop, viewers=viewers, sinks=sinks,
                conditions=conditions, health=health,
                **{key: value for key, value in given.items() if value is not None},
            )
            camera.settings()  # validates the commentary interval
            camera.limits(Limits())  # and the evidence bounds
        except UsageError as exc:
            raise self.error(where, exc.message) from exc
        return camera

    def source(self, body: dict[str, Any], where: str) -> str:
        if "source" not in body:
            raise self.error(f"{where}.source", "missing (an rtsp://, http(s):// URL, /dev/videoN or a file)")
        source = self.value(body, "source", where, str, "")
        if not source.strip():
            raise self.error(f"{where}.source", "is empty")
        scheme = urlsplit(source).scheme.lower()
        password_env = self.value(body, "password_env", where, str, "")
        if scheme in _URL_SCHEMES:
            parts = urlsplit(source)
            if not parts.hostname:
                raise self.error(f"{where}.source", f"URL has no host: {redact_url(source)}")
            if password_env:
                if password_env not in self.env:
                    raise self.error(f"{where}.password_env", f"environment variable {password_env} is not set")
                if not parts.username:
                    raise self.error(f"{where}.source", "password_env needs a user name in the URL (user@host)")
                hostport = parts.netloc.rpartition("@")[2]
                netloc = f"{parts.username}:{quote(self.env[password_env], safe='')}@{hostport}"
                source = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
            return source
        if password_env:
            raise self.error(f"{where}.password_env", "only URL sources take a password")
        if is_device_spec(source):
            return source
        if scheme and len(scheme) > 1 and scheme != "file":
            raise self.error(f"{where}.source", f"unsupported scheme {scheme!r} (rtsp, rtsps, http, https, "
                                                "a device or a file)")
        path = Path(source[len("file://"):] if scheme == "file" else source).expanduser()
        if not path.is_absolute():
            path = self.origin.parent / path
        if not path.is_file():
            raise self.error(f"{where}.source", f"no such file: {path}")
        return str(path)

    def viewers(self, names: list[Any], where: str) -> tuple[str, ...]:
        for name in names:
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise self.error(f"{where}.viewers", f"must be a list of token names, got {name!r}")
        return tuple(dict.fromkeys(names))

    def sampling(self, table: dict[str, Any], where: str) -> SamplingPolicy:
        values = {k: self.value(table, k, f"{where}.sampling", int if k in ("max_side", "jpeg_quality") else float,
                                None) for k in table}
        try:
            return SamplingPolicy().updated(**values)
        except UsageError as exc:
            raise self.error(f"{where}.sampling", exc.message) from exc

    def connection(self, body: dict[str, Any], defaults: dict[str, Any], where: str) -> ConnectionOptions:
        conn = self.merged(body, defaults, "connection", where, _CONNECTION_KEYS)
        rec = self.merged(body, defaults, "reconnect", where, _RECONNECT_KEYS)
        conn_values = {k: self.value(conn, k, f"{where}.connection", str if k == "transport" else float, None)
                       for k in conn}
        rec_values = {k: self.value(rec, k, f"{where}.reconnect", int if k == "max_attempts" else float, None)
                      for k in rec}
        if rec_values.get("max_attempts") == 0:
            rec_values["max_attempts"] = None  # 0 = forever
        try:
            policy = RetryPolicy(**rec_values)
        except UsageError as exc:
            raise self.error(f"{where}.reconnect", exc.message) from exc
        try:
            return ConnectionOptions(**conn_values, reconnect=policy)
        except UsageError as exc:
            raise self.error(f"{where}.connection", exc.message) from exc

    def conditions(self, body: dict[str, Any], where: str) -> tuple[Condition, ...]:
        """``[[cameras.NAME.conditions]]``: keys as the proto's WatchCondition (``cooldown`` in
        seconds, ``until`` in seconds since the epoch), ``text`` required."""
        items = body.get("conditions", [])
        if not isinstance(items, list):
            raise self.error(f"{where}.conditions", "must be an array of tables ([[cameras.NAME.conditions]])")
        try:
            out = []
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    raise self.error(f"{where}.conditions[{index}]", "must be a table with a text")
                out.append(condition_from_mapping(item, index, where=f"{where}.conditions"))
            return check_conditions(out)
        except UsageError as exc:
            raise self.error(where, exc.message) from exc

    def health(self, values: dict[str, Any], where: str) -> HealthSettings:
        """``[cameras.NAME.health]`` over ``[defaults.health]``; on unless ``enabled = false``."""
        try:
            return HealthSettings(**{"enabled": True, **values})
        except (UsageError, TypeError) as exc:
            problem = exc.message if isinstance(exc, UsageError) else "values must be numbers or booleans"
            raise self.error(f"{where}.health", problem) from exc

    def tools(self, body: dict[str, Any], where: str) -> tuple[FunctionSpec, ...]:
        tools = body.get("tools", [])
        if not isinstance(tools, list):
            raise self.error(f"{where}.tools", "must be an array of tables ([[cameras.NAME.tools]])")
        specs = []
        for index, tool in enumerate(tools):
            place = f"{where}.tools[{index}]"
            if not isinstance(tool, dict):
                raise self.error(place, "must be a table with a name")
            self.keys(tool, place, _TOOL_KEYS)
            name = self.value(tool, "name", place, str, "")
            if not _FUNCTION_NAME.fullmatch(name):
                raise self.error(f"{place}.name", f"not a valid function name: {name!r}")
            parameters = self.value(tool, "parameters", place, dict, {})
            try:
                json.dumps(parameters)
            except (TypeError, ValueError) as exc:
                raise self.error(f"{place}.parameters", "must be JSON-compatible (no dates)") from exc
            specs.append(FunctionSpec(name=name, description=self.value(tool, "description", place, str, ""),
                                      parameters=parameters))
        return tuple(specs)


def _describe(source: str) -> str:
    return redact_url(source) if "://" in source else source
