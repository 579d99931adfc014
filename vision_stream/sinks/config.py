"""Sinks in the config file: ``[[sinks]]`` for every session, ``[[cameras.NAME.sinks]]`` for one camera.

Example (the same file ``serve --config`` reads, see server/cameras.py)::

    [[sinks]]                         # every session (or: cameras = ["driveway"])
    type = "webhook"
    name = "alerts"                   # names the sink in logs and metrics (default: type + index)
    url = "https://hooks.example/vision"
    secret_env = "ALERTS_SECRET"      # HMAC-SHA256 key from the environment (or secret = "...")
    events = ["detection"]            # event types (default: commentary, detection, alert, error,
                                      #   backend_changed, session_ended)
    labels = ["person", "car"]        # detections with these labels only (default: any)
    min_severity = "medium"           # detections and alerts at or above: info, low, medium, high
    queue = 256                       # events waiting; the oldest is dropped (and counted) past it
    timeout = 5.0                     # seconds per POST
    [sinks.retry]                     # vision_stream.retry.RetryPolicy keys
    max_attempts = 5

    [[cameras.driveway.sinks]]        # this camera only
    type = "mqtt"
    host = "127.0.0.1"
    port = 1883
    username = "vs"
    password_env = "MQTT_PASSWORD"
    topic_prefix = "vision-stream"    # events on vision-stream/<camera>/<type>
    discovery_prefix = "homeassistant"
    node_id = "vision_stream"         # Home Assistant device; availability on <prefix>/<node_id>/availability

Commentary reaches sinks when final (one message per turn, not per fragment).
Secrets (``secret``, ``password``) are never shown in ``repr`` or errors.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config_tables import TableParser
from ..errors import CameraConfigError, UsageError
from ..events import Alert, Commentary, Detection, Event
from ..retry import RetryPolicy

__all__ = ["DEFAULT_EVENTS", "EVENT_TYPES", "SEVERITIES", "MqttSinkConfig", "SinkConfig", "SinkFilter",
           "WebhookSinkConfig", "load_sinks", "parse_sinks"]

EVENT_TYPES = ("session_started", "commentary", "transcript", "detection", "audio_out", "backend_changed",
               "stats", "error", "session_ended", "alert")
DEFAULT_EVENTS = ("commentary", "detection", "alert", "error", "backend_changed", "session_ended")
SEVERITIES = ("info", "low", "medium", "high")
MAX_SINKS = 64
MAX_QUEUE = 100_000

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOPIC_WORD = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # no MQTT wildcards (+, #) nor levels (/)
_COMMON_KEYS = {"type", "name", "cameras", "events", "labels", "min_severity", "queue", "retry"}
_WEBHOOK_KEYS = _COMMON_KEYS | {"url", "secret", "secret_env", "timeout"}
_MQTT_KEYS = _COMMON_KEYS | {"host", "port", "username", "password", "password_env", "topic_prefix",
                             "discovery_prefix", "node_id", "keepalive"}
_RETRY_KEYS = {"initial_delay", "max_delay", "multiplier", "jitter", "max_attempts", "stable_after"}


@dataclass(frozen=True, kw_only=True, slots=True)
class SinkFilter:
    """Which events a sink gets: by type, detection label and minimum severity (of detections
    and alerts: Alert.severity, "high" for the built-in health conditions)."""

    events: frozenset[str] = frozenset(DEFAULT_EVENTS)
    labels: frozenset[str] = frozenset()  # empty: any label
    min_severity: str = "info"

    def accepts(self, event: Event) -> bool:
        if event.kind not in self.events:
            return False
        payload = event.payload
        if isinstance(payload, Commentary):
            return payload.final  # fragments of a turn would flood a webhook
        if isinstance(payload, Detection):
            if self.labels and payload.label not in self.labels:
                return False
            return self._severe(payload.severity)
        if isinstance(payload, Alert):
            return self._severe(payload.severity)
        return True

    def _severe(self, severity: str) -> bool:
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        return rank >= SEVERITIES.index(self.min_severity)


@dataclass(frozen=True, kw_only=True, slots=True)
class _SinkBase:
    name: str
    cameras: tuple[str, ...] = ()  # session ids it follows; empty: every session
    filter: SinkFilter = field(default_factory=SinkFilter)
    queue: int = 256
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(initial_delay=0.5, max_delay=30.0))

    def follows(self, session_id: str) -> bool:
        return not self.cameras or session_id in self.cameras


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookSinkConfig(_SinkBase):
    url: str
    secret: str = field(default="", repr=False)
    timeout: float = 5.0


@dataclass(frozen=True, kw_only=True, slots=True)
class MqttSinkConfig(_SinkBase):
    host: str
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)
    topic_prefix: str = "vision-stream"
    discovery_prefix: str = "homeassistant"
    node_id: str = "vision_stream"
    keepalive: int = 30


SinkConfig = WebhookSinkConfig | MqttSinkConfig


def load_sinks(path: Path, *, env: Mapping[str, str]) -> tuple[SinkConfig, ...]:
    """The top-level ``[[sinks]]`` of the config file ``path`` (cameras' own sinks come with
    their CameraConfig); raises CameraConfigError."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CameraConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CameraConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_sinks(doc.get("sinks", []), where="sinks", origin=path, env=env)


def parse_sinks(items: Any, *, where: str, origin: Path, env: Mapping[str, str],
                camera: str | None = None, first_index: int = 0) -> tuple[SinkConfig, ...]:
    """Validate an array of sink tables found at ``where`` in ``origin``; ``camera``: the
    camera they belong to (their ``cameras`` is then that one). Raises CameraConfigError."""
    parser = _Parser(origin, env)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise parser.error(where, f"must be an array of tables ([[{where}]])")
    if len(items) > MAX_SINKS:
        raise parser.error(where, f"at most {MAX_SINKS} sinks, got {len(items)}")
    return tuple(parser.sink(item, f"{where}[{i}]", camera, first_index + i) for i, item in enumerate(items))


class _Parser(TableParser):
    def words(self, table: dict[str, Any], key: str, where: str, allowed: tuple[str, ...] | None) -> tuple[str, ...]:
        values = self.value(table, key, where, list, [])
        for value in values:
            if not isinstance(value, str) or not value or len(value) > 64:
                raise self.error(f"{where}.{key}", "must be a list of names (1-64 characters)")
            if allowed is not None and value not in allowed:
                raise self.error(f"{where}.{key}", f"unknown {value[:64]!r} (known: {', '.join(allowed)})")
        return tuple(values)

    def secret(self, table: dict[str, Any], key: str, where: str) -> str:
        """``key`` inline or ``key_env`` naming an environment variable; never echoed."""
        env_key = f"{key}_env"
        if key in table and env_key in table:
            raise self.error(where, f"give {key} or {env_key}, not both")
        if env_key in table:
            name = self.value(table, env_key, where, str, "")
            if name not in self.env:
                raise self.error(f"{where}.{env_key}", f"environment variable {name[:64]!r} is not set")
            return self.env[name]
        return str(self.value(table, key, where, str, ""))

    def sink(self, table: dict[str, Any], where: str, camera: str | None, index: int) -> SinkConfig:
        kind = self.value(table, "type", where, str, "")
        if kind not in ("webhook", "mqtt"):
            raise self.error(f"{where}.type", "must be \"webhook\" or \"mqtt\"")
        known = _WEBHOOK_KEYS if kind == "webhook" else _MQTT_KEYS
        for key in table:
            if key not in known:
                raise self.error(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
        name = self.value(table, "name", where, str, f"{kind}{index}")
        if not _NAME.fullmatch(name):
            raise self.error(f"{where}.name", "1-64 letters, digits, '.', '_' or '-'")
        cameras = (camera,) if camera is not None else self.words(table, "cameras", where, None)
        if camera is not None and "cameras" in table:
            raise self.error(f"{where}.cameras", "a camera's own sink follows that camera only: remove cameras")
        severity = self.value(table, "min_severity", where, str, "info")
        if severity not in SEVERITIES:
            raise self.error(f"{where}.min_severity", f"must be one of {', '.join(SEVERITIES)}")
        events = self.words(table, "events", where, EVENT_TYPES) or DEFAULT_EVENTS
        common: dict[str, Any] = {
            "name": name, "cameras": cameras,
            "filter": SinkFilter(events=frozenset(events), labels=frozenset(self.words(table, "labels", where, None)),
                                 min_severity=severity),
            "queue": self.value(table, "queue", where, int, 256),
            "retry": self.retry(table, where),
        }
        if not 1 <= common["queue"] <= MAX_QUEUE:
            raise self.error(f"{where}.queue", f"must be 1-{MAX_QUEUE} events")
        return self.webhook(table, where, common) if kind == "webhook" else self.mqtt(table, where, common)

    def retry(self, table: dict[str, Any], where: str) -> RetryPolicy:
        body = self.value(table, "retry", where, dict, {})
        for key in body:
            if key not in _RETRY_KEYS:
                raise self.error(f"{where}.retry.{key}", f"unknown key (known: {', '.join(sorted(_RETRY_KEYS))})")
        values = {key: self.value(body, key, f"{where}.retry", int if key == "max_attempts" else float, None)
                  for key in body}
        if values.get("max_attempts") == 0:
            values["max_attempts"] = None  # 0 = forever, as for cameras' reconnect
        base = {"initial_delay": 0.5, "max_delay": 30.0, "max_attempts": 5}
        try:
            return RetryPolicy(**{**base, **values})
        except UsageError as exc:
            raise self.error(f"{where}.retry", exc.message) from None

    def webhook(self, table: dict[str, Any], where: str, common: dict[str, Any]) -> WebhookSinkConfig:
        url = self.value(table, "url", where, str, "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(f"{where}.url", "must be an http:// or https:// URL")
        timeout = self.value(table, "timeout", where, float, 5.0)
        if not 0 < timeout <= 300:
            raise self.error(f"{where}.timeout", "must be in (0, 300] seconds")
        secret = self.secret(table, "secret", where)
        if not secret:
            raise self.error(where, "a webhook needs secret or secret_env (the receiver checks the signature)")
        return WebhookSinkConfig(url=url, secret=secret, timeout=timeout, **common)

    def mqtt(self, table: dict[str, Any], where: str, common: dict[str, Any]) -> MqttSinkConfig:
        host = self.value(table, "host", where, str, "")
        if not host:
            raise self.error(f"{where}.host", "missing (the MQTT broker's host name or address)")
        port = self.value(table, "port", where, int, 1883)
        if not 1 <= port <= 65535:
            raise self.error(f"{where}.port", "must be 1-65535")
        keepalive = self.value(table, "keepalive", where, int, 30)
        if not 5 <= keepalive <= 3600:
            raise self.error(f"{where}.keepalive", "must be 5-3600 seconds")
        words = {key: self.value(table, key, where, str, default) for key, default in
                 (("topic_prefix", "vision-stream"), ("discovery_prefix", "homeassistant"),
                  ("node_id", "vision_stream"))}
        for key, value in words.items():
            if not _TOPIC_WORD.fullmatch(value):
                raise self.error(f"{where}.{key}", "1-64 letters, digits, '.', '_' or '-' (one topic level)")
        return MqttSinkConfig(host=host, port=port, username=self.value(table, "username", where, str, ""),
                              password=self.secret(table, "password", where), keepalive=keepalive,
                              **words, **common)
