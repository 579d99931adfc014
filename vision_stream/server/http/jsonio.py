"""One schema, two transports: protobuf messages as JSON (protobuf's JSON mapping, camelCase)."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from ...errors import InvalidInputError, LimitExceededError
from ...events import Event
from ...proto import event_to_proto
from .state import BODY_LIMIT

__all__ = ["BodyTooLarge", "event_json", "parse_message", "read_message", "to_json"]

M = TypeVar("M", bound=Message)

# Parse errors name the field; cut so one bad body cannot make a huge message.
_PROBLEM_CHARS = 200


class BodyTooLarge(LimitExceededError):
    """A request body over the server's limit (answered 413, status RESOURCE_EXHAUSTED)."""


def to_json(message: Message) -> str:
    """``message`` in protobuf's JSON mapping, on one line (SSE ``data:`` needs one)."""
    return json_format.MessageToJson(message, indent=None)


def event_json(event: Event) -> str:
    """One event as the JSON of its ``pb.Event`` (what SSE and the WebSocket send)."""
    return to_json(event_to_proto(event))


def parse_message(text: str | bytes, message: M, what: str) -> M:
    """``text`` parsed into ``message`` (unknown fields refused, as a typo should be)."""
    try:
        return json_format.Parse(text, message)
    except (json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"{what}: not a valid {message.DESCRIPTOR.name} JSON: "
                                f"{str(exc)[:_PROBLEM_CHARS]}") from None


async def read_message(request: web.Request, message: M) -> M:
    """The request's JSON body as ``message``; BodyTooLarge past the app's client_max_size."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(f"the request body is over the server's {request.app[BODY_LIMIT]}-byte "
                           "limit") from None
    if not body.strip():
        raise InvalidInputError(f"the request body is empty: send a {message.DESCRIPTOR.name} as JSON")
    return parse_message(body, message, "request body")
