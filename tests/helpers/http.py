"""The HTTP side under test: its base URL, an SSE reader, JSON <-> protobuf (json_format)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from google.protobuf import json_format
from google.protobuf.message import Message

from helpers.server import Served

M = TypeVar("M", bound=Message)


def base_url(served: Served) -> str:
    port = served.running.http_port
    assert port, "start the server with http_port=0 (helpers.server.serve(..., http_port=0))"
    return f"http://127.0.0.1:{port}"


def ws_url(served: Served, path: str = "/v1/stream") -> str:
    return base_url(served).replace("http://", "ws://", 1) + path


def as_message(body: str | bytes | dict[str, Any], message: M) -> M:
    """A JSON answer parsed into ``message`` with protobuf's JSON mapping (fails on unknown fields)."""
    return json_format.Parse(body if not isinstance(body, dict) else json.dumps(body), message)


def as_json(message: Message) -> str:
    return json_format.MessageToJson(message)


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent | str]:
    """The events of an open ``text/event-stream`` response, in order; comments
    (``: ping``) come as their text. Follows the WHATWG parsing rules we rely on:
    fields ``id``/``event``/``data``, a blank line ends an event."""
    fields: dict[str, list[str]] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield line[1:].strip()
            continue
        if not line:
            if fields:
                ident, name = fields.get("id", [None])[-1], fields.get("event", [None])[-1]
                yield SseEvent(ident, name, "\n".join(fields.get("data", [])))
                fields = {}
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
