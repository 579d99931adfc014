"""Prometheus metrics: a registry of our own, read at scrape time.

Why a custom collector: a session already counts everything (``Session.stats()``,
built by :mod:`vision_stream.pipeline.stats`); keeping a second set of
prometheus counters beside those would be double bookkeeping that can drift.
So :class:`SessionCollector` walks the running servers' session registries when
``/metrics`` is scraped and turns each session's ``Stats`` into samples. Only
what no ``Stats`` field holds is counted here, exactly once per event, by an
observer on the session's event log (commentary turns, backend switches by
reason; backfilled from the retained log the first time a session is seen).
Latencies are histograms observed where they are measured:

- frame-to-wire: from the sampler taking the decoded frame (``SampledFrame.decoded_at``)
  to the return of the Live socket's ``send`` that carried it (Live backend);
- event fan-out: from the event log's append (``Event.wall_time``) to a live
  subscriber's stream taking it (gRPC Subscribe/Watch/Stream, SSE, sinks).

Label cardinality is bounded: the ``session`` label is a configured camera's
name, or the id of one of at most :data:`MAX_LABELLED_SESSIONS` other
sessions (first come, kept while listed); every other session is summed into
``session="other"``. Backend-switch reasons are a small fixed vocabulary
(:func:`switch_reason`). Metrics carry counts, names and ids only, never
sources, prompts or keys: ``/metrics`` needs no token.

Call :func:`render_latest` on the event loop's thread (the HTTP route does):
sessions change on that thread, so the walk sees a consistent set.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .events import Event
    from .pipeline import Session
    from .server.registry import SessionRegistry

__all__ = [
    "MAX_LABELLED_SESSIONS", "REGISTRY", "observe_fanout", "observe_frame_to_wire", "register_registry",
    "render_latest", "sink_outcome", "switch_reason", "unregister_registry",
]

log = logging.getLogger(__name__)

MAX_LABELLED_SESSIONS = 20
OTHER = "other"

# Our own registry: the process-global default would also export whatever
# else the process registers (and tests start many servers in one process).
REGISTRY = CollectorRegistry(auto_describe=True)

# Seconds; from 1 ms (an idle loop) to 10 s (a model that stalls the socket).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

FRAME_TO_WIRE = Histogram(
    "vision_stream_frame_to_wire_seconds",
    "Sampled frame: decode to the Live socket write that carried it (seconds)",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
EVENT_FANOUT = Histogram(
    "vision_stream_event_fanout_seconds",
    "Event: append to the session's log to a live subscriber taking it (seconds)",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)
SINK_EVENTS = Counter(
    "vision_stream_sink_events",
    "Events handed to webhook/MQTT sinks, by sink name and outcome (delivered, dropped, failed)",
    ["sink", "outcome"], registry=REGISTRY,
)

SINK_OUTCOMES = ("delivered", "dropped", "failed")


def observe_frame_to_wire(seconds: float) -> None:
    """One frame went out on the wire ``seconds`` after it was decoded."""
    FRAME_TO_WIRE.observe(max(0.0, seconds))


def observe_fanout(events: Iterable[Event], now: float | None = None) -> None:
    """A live subscriber took ``events`` (just appended, not a replay) at ``now`` (time.time())."""
    now = time.time() if now is None else now
    for event in events:
        EVENT_FANOUT.observe(max(0.0, now - event.wall_time))


def sink_outcome(sink: str, outcome: str, count: int = 1) -> None:
    """Count ``count`` events of sink ``sink`` as delivered, dropped or failed (sink names come
    from the config file: bounded)."""
    SINK_EVENTS.labels(sink=sink, outcome=outcome).inc(count)


# Backend switches: free-text reasons ("live: connect timed out; rest: 429 ...")
# folded into a fixed vocabulary, first match wins.
_REASON_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("recovered", ("healthy again",)),
    ("quota", ("quota", "resource_exhausted", "resource exhausted")),
    ("rate_limited", ("rate", "429")),
    ("auth", ("401", "403", "unauthenticated", "permission", "api key", "key ")),
    ("timeout", ("timeout", "timed out", "stall")),
    ("go_away", ("go_away", "goaway", "go away")),
    ("unavailable", ("unavailable", "refused", "unreachable", "connect", "closed", "503", "502", "500", "1011")),
)
SWITCH_REASONS = ("reconnect", *(name for name, _ in _REASON_WORDS), "error")


def switch_reason(from_backend: str, to_backend: str, reason: str) -> str:
    """The bounded label for one ``backend_changed`` event (one of SWITCH_REASONS)."""
    if from_backend == to_backend:
        return "reconnect"  # a Live session resuming on a new connection
    text = reason.lower()
    for name, words in _REASON_WORDS:
        if any(word in text for word in words):
            return name
    return "error"


class _Tally:
    """What a session's Stats do not count: final commentary turns, switches by reason."""

    __slots__ = ("commentary_turns", "switches")

    def __init__(self) -> None:
        self.commentary_turns = 0
        self.switches: Tally[str] = Tally()

    def __call__(self, event: Event) -> None:
        from .events import BackendChanged, Commentary  # events imports this module

        payload = event.payload
        if isinstance(payload, Commentary) and payload.final:
            self.commentary_turns += 1
        elif isinstance(payload, BackendChanged):
            self.switches[switch_reason(payload.from_backend, payload.to_backend, payload.reason)] += 1


class _Labels:
    """The bounded ``session`` label: cameras by name, up to ``limit`` others by id, the rest "other"."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._named: set[str] = set()
        self._overflow: set[str] = set()  # stays "other" while listed, so a series never jumps

    def assign(self, listed: list[tuple[str, bool]]) -> dict[str, str]:
        """``listed``: (session id, is a configured camera) now; returns id -> label."""
        present = {sid for sid, _ in listed}
        self._named &= present
        self._overflow &= present
        labels = {}
        for sid, camera in listed:
            if camera:
                labels[sid] = sid
            elif sid in self._named:
                labels[sid] = sid
            elif sid not in self._overflow and len(self._named) < self.limit:
                self._named.add(sid)
                labels[sid] = sid
            else:
                self._overflow.add(sid)
                labels[sid] = OTHER
        return labels


# (metric name, help, Stats field); each is a per-session counter.
_STATS_COUNTERS = (
    ("vision_stream_frames_in", "Video frames the source handed to the sampler", "frames_in"),
    ("vision_stream_frames_sampled", "Frames the sampler chose", "frames_sampled"),
    ("vision_stream_frames_sent", "Sampled frames that reached the model", "frames_sent"),
    ("vision_stream_frames_dropped", "Sampled frames that never reached the model (latest-wins)", "frames_dropped"),
    ("vision_stream_audio_chunks_in", "Audio chunks received from the source", "audio_chunks_in"),
    ("vision_stream_audio_chunks_sent", "Audio chunks sent to the model", "audio_chunks_sent"),
    ("vision_stream_audio_chunks_dropped", "Audio chunks dropped before the model", "audio_chunks_dropped"),
    ("vision_stream_bad_packets", "Undecodable packets skipped", "bad_packets"),
    ("vision_stream_prompts", "Prompts sent to the model (cadence, client, final)", "prompts_sent"),
    ("vision_stream_reconnects", "Backend reconnects", "reconnects"),
    ("vision_stream_estimated_cost_usd", "Estimated model cost in US dollars (where prices are known)",
     "estimated_cost_usd"),
)


class SessionCollector(Collector):
    """Reads every registered SessionRegistry's sessions at scrape time."""

    def __init__(self, *, limit: int = MAX_LABELLED_SESSIONS) -> None:
        self._registries: weakref.WeakSet[SessionRegistry] = weakref.WeakSet()
        self._labels = _Labels(limit)
        # Keyed by the session object (ids can be reused by a new session).
        self._tallies: weakref.WeakKeyDictionary[Session, _Tally] = weakref.WeakKeyDictionary()

    def add(self, registry: SessionRegistry) -> None:
        self._registries.add(registry)

    def discard(self, registry: SessionRegistry) -> None:
        self._registries.discard(registry)

    def _tally(self, session: Session) -> _Tally:
        tally = self._tallies.get(session)
        if tally is None:
            tally = self._tallies[session] = _Tally()
            for event in session.log.snapshot():  # what happened before the first scrape
                tally(event)
            session.log.observers.append(tally)
        return tally

    def _sessions(self) -> list[tuple[Session, bool]]:
        from .server.auth import ANONYMOUS  # every right: sees every session

        out = []
        for registry in list(self._registries):
            for session in registry.list(principal=ANONYMOUS):
                out.append((session, registry.ownership(session.session_id).owner is None))
        return out

    def collect(self) -> Iterator[Metric]:
        sessions = self._sessions()
        labels = self._labels.assign([(s.session_id, camera) for s, camera in sessions])
        counters = {name: CounterMetricFamily(name, doc, labels=["session"]) for name, doc, _ in _STATS_COUNTERS}
        sums: dict[str, Tally[str]] = {field: Tally() for _, _, field in _STATS_COUNTERS}
        turns: Tally[str] = Tally()
        switches: Tally[tuple[str, str]] = Tally()
        tokens: Tally[tuple[str, str]] = Tally()
        subscribers: Tally[str] = Tally()
        states: Tally[tuple[str, str]] = Tally()
        for session, _camera in sessions:
            label = labels[session.session_id]
            stats = session.stats()
            for field in sums:
                sums[field][label] += getattr(stats, field)
            for kind, count in stats.usage.items():
                tokens[(label, kind)] += count
            tally = self._tally(session)
            turns[label] += tally.commentary_turns
            for reason, count in tally.switches.items():
                switches[(label, reason)] += count
            subscribers[label] += session.log.subscribers
            states[(session.state.value, session.backend_name or "none")] += 1
        for name, _doc, field in _STATS_COUNTERS:
            for label, value in sorted(sums[field].items()):
                counters[name].add_metric([label], value)
        yield from counters.values()
        yield _family(CounterMetricFamily("vision_stream_commentary_turns", "Final commentary turns",
                                          labels=["session"]), turns)
        yield _family(CounterMetricFamily("vision_stream_backend_switches",
                                          "Backend switches (failover, Live reconnects) by bounded reason",
                                          labels=["session", "reason"]), switches)
        yield _family(CounterMetricFamily("vision_stream_tokens", "Model tokens by kind (vision_stream.usage)",
                                          labels=["session", "kind"]), tokens)
        yield _family(GaugeMetricFamily("vision_stream_subscribers", "Event subscribers now (streams, sinks)",
                                        labels=["session"]), subscribers)
        yield _family(GaugeMetricFamily("vision_stream_sessions", "Sessions listed by the server, by state and backend",
                                        labels=["state", "backend"]), states)


def _family(family: Any, values: Tally[Any]) -> Metric:
    for key, value in sorted(values.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


_COLLECTOR = SessionCollector()
REGISTRY.register(_COLLECTOR)


def register_registry(registry: SessionRegistry) -> None:
    """Export ``registry``'s sessions (server/app.py, at start-up); held weakly."""
    _COLLECTOR.add(registry)


def unregister_registry(registry: SessionRegistry) -> None:
    """Stop exporting ``registry``'s sessions (server stop)."""
    _COLLECTOR.discard(registry)


def render_latest() -> tuple[bytes, str]:
    """The Prometheus text exposition of our registry and its content type (for ``GET /metrics``)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
