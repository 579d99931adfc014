"""Events delivered where people look: webhooks and MQTT (Home Assistant).

- :mod:`.config`: ``[[sinks]]`` / ``[[cameras.NAME.sinks]]`` tables of the config file;
- :mod:`.base`: a sink's filter and bounded queue, and the :class:`SinkHub` that
  follows sessions' event logs (like Subscribe) and never blocks them;
- :mod:`.webhook`: signed JSON POSTs with retries; :mod:`.mqtt`: topics,
  Home Assistant discovery and availability.
"""

from .base import Sink, SinkHub
from .config import MqttSinkConfig, SinkConfig, SinkFilter, WebhookSinkConfig, parse_sinks

__all__ = ["MqttSinkConfig", "Sink", "SinkConfig", "SinkFilter", "SinkHub", "WebhookSinkConfig", "parse_sinks"]
