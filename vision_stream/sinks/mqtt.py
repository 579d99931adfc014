"""MQTT sink: events on ``<prefix>/<camera>/<type>``, Home Assistant discovery, availability.

Topics (``prefix`` = ``topic_prefix``, default ``vision-stream``):

- ``<prefix>/<camera>/<type>``: each event's ``pb.Event`` JSON (type = the
  payload's name: commentary, detection, error...), QoS 1; commentary is
  retained, so Home Assistant shows the latest turn after a restart;
- ``<prefix>/<camera>/detection/<label>``: ``ON`` per detection, for the
  label's binary sensor (Home Assistant turns it off after ``off_delay``);
- ``<prefix>/<node_id>/availability``: ``online`` (retained) once connected,
  ``offline`` as the broker-held last will (MQTT 3.1.1 §3.1.2.5): the broker
  publishes it when the connection dies without a DISCONNECT, i.e. the
  server crashed or lost the network; a clean shutdown publishes it itself.
- Discovery, retained, for configured cameras only (ad-hoc sessions would
  leave stale devices behind): ``<discovery>/sensor/<node_id>/<camera>_commentary/config``
  (the latest commentary) and ``<discovery>/binary_sensor/<node_id>/<camera>_<label>/config``
  per detection label (the filter's ``labels`` up front, others when first seen;
  at most :data:`MAX_LABELS` per camera).

The connection is retried with the sink's capped jittered backoff
(``retry.Backoff``) for as long as the server runs; meanwhile events wait in the
bounded queue (oldest dropped, counted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re

import aiomqtt

from ..events import Detection, Event
from ..retry import Backoff
from ..server.http.jsonio import event_json
from .base import Sink
from .config import MqttSinkConfig

__all__ = ["MAX_LABELS", "MqttSink", "slug"]

log = logging.getLogger(__name__)

MAX_LABELS = 32
OFF_DELAY = 30  # seconds a detection's binary sensor stays on
_SLUG = re.compile(r"[^a-z0-9_-]+")
_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HA_STATE_CHARS = 255  # Home Assistant refuses longer sensor states


def slug(text: str) -> str:
    """``text`` as one topic level / HA object id: lower case, [a-z0-9_-], at most 64 characters."""
    return _SLUG.sub("_", text.lower()).strip("_")[:64] or "unnamed"


class MqttSink(Sink):
    config: MqttSinkConfig

    def __init__(self, config: MqttSinkConfig) -> None:
        super().__init__(config)
        self.availability = f"{config.topic_prefix}/{config.node_id}/availability"
        self._cameras: dict[str, set[str]] = {}  # camera -> labels announced
        self._unannounced: list[tuple[str, str | None]] = []  # (camera, label or None for its sensor)
        self.connected = asyncio.Event()

    # ------------------------------------------------------------ what to announce

    def session_seen(self, session_id: str, *, camera: bool) -> None:
        if not camera or session_id in self._cameras:
            return
        self._cameras[session_id] = set()
        self._unannounced.append((session_id, None))
        for label in sorted(self.config.filter.labels):
            self._add_label(session_id, label)
        self.poke()

    def _add_label(self, camera: str, label: str) -> None:
        labels = self._cameras.get(camera)
        if labels is None or slug(label) in labels or len(labels) >= MAX_LABELS:
            return
        labels.add(slug(label))
        self._unannounced.append((camera, label))

    def _discovery(self, camera: str, label: str | None) -> tuple[str, str]:
        cfg = self.config
        device = {"identifiers": [f"{cfg.node_id}_{slug(camera)}"], "name": camera,
                  "manufacturer": "vision-stream", "model": "camera session"}
        body: dict[str, object]
        if label is None:
            object_id = f"{slug(camera)}_commentary"
            body = {"name": "Commentary", "state_topic": self.topic(camera, "commentary"),
                    "value_template": "{{ value_json.commentary.text[:" + str(_HA_STATE_CHARS) + "] }}",
                    "icon": "mdi:message-text"}
            component = "sensor"
        else:
            object_id = f"{slug(camera)}_{slug(label)}"
            body = {"name": label, "state_topic": self.topic(camera, "detection", slug(label)),
                    "payload_on": "ON", "off_delay": OFF_DELAY}
            component = "binary_sensor"
        body |= {"unique_id": f"{cfg.node_id}_{object_id}", "object_id": object_id, "device": device,
                 "availability_topic": self.availability}
        return f"{cfg.discovery_prefix}/{component}/{cfg.node_id}/{object_id}/config", json.dumps(body)

    def topic(self, camera: str, *levels: str) -> str:
        # Session ids are kept as they are when they are one safe topic level (no /, +, #).
        level = camera if _TOPIC_LEVEL.fullmatch(camera) else slug(camera)
        return "/".join((self.config.topic_prefix, level, *levels))

    # ---------------------------------------------------------------- delivery

    async def run(self) -> None:
        # A broker is reconnected to for as long as the server runs: no attempt limit.
        backoff = Backoff(dataclasses.replace(self.config.retry, max_attempts=None))
        while True:
            try:
                await self._session(backoff)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                wait = backoff.fail() or self.config.retry.max_delay
                log.warning("sink %s: MQTT %s:%d: %s; reconnecting in %.1f s", self.name, self.config.host,
                            self.config.port, str(exc)[:200], wait)
                await asyncio.sleep(wait)

    async def _session(self, backoff: Backoff) -> None:
        cfg = self.config
        will = aiomqtt.Will(self.availability, "offline", qos=1, retain=True)
        async with aiomqtt.Client(cfg.host, cfg.port, username=cfg.username or None, password=cfg.password or None,
                                  identifier=f"{cfg.node_id}-{self.name}", will=will,
                                  keepalive=cfg.keepalive, timeout=10.0) as client:
            await client.publish(self.availability, "online", qos=1, retain=True)
            # Everything is announced again on each connection: the broker may have lost retained messages.
            self._unannounced = [(camera, None) for camera in self._cameras] + [
                (camera, label) for camera, labels in self._cameras.items() for label in sorted(labels)]
            self.connected.set()
            backoff.reset()
            try:
                await self._publish_loop(client)
            except asyncio.CancelledError:
                # A clean stop sends DISCONNECT, after which the broker discards the will: say it ourselves.
                self.connected.clear()
                await self._goodbye(client)
                raise

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        try:
            await client.publish(self.availability, "offline", qos=1, retain=True, timeout=2.0)
        except aiomqtt.MqttError:
            pass

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            while self._unannounced:
                camera, label = self._unannounced[0]
                topic, body = self._discovery(camera, label)
                await client.publish(topic, body, qos=1, retain=True)
                self._unannounced.pop(0)
            event = await self.next_event()
            if event is None:
                continue
            try:
                await self._publish(client, event)
            except aiomqtt.MqttError:
                self.requeue(event)
                raise
            self.note_delivered()

    async def _publish(self, client: aiomqtt.Client, event: Event) -> None:
        camera = event.session_id
        payload = event.payload
        if isinstance(payload, Detection) and camera in self._cameras:
            self._add_label(camera, payload.label)
            while self._unannounced:  # the label's sensor exists before its first ON
                topic, body = self._discovery(*self._unannounced[0])
                await client.publish(topic, body, qos=1, retain=True)
                self._unannounced.pop(0)
        await client.publish(self.topic(camera, event.kind), event_json(event), qos=1,
                             retain=event.kind == "commentary")
        if isinstance(payload, Detection):
            await client.publish(self.topic(camera, "detection", slug(payload.label)), "ON", qos=1)
