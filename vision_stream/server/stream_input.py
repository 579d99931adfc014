"""A ``Stream`` call's client messages: numbered, timed, rate-limited, never lost.

grpc.aio deserializes each request inside the handler's read of the request
iterator: with the generated deserializer a corrupt message raises protobuf's
``DecodeError`` out of ``__anext__`` (so it used to end the input looking like
a normal end). The server installs :func:`stream_request_reader` for
``Stream`` instead: it never raises, and hands undecodable or oversize bytes
over as a :class:`BadMessage`, which :class:`StreamInput` turns into an error
naming the message's number.

Oversize: gRPC refuses a message over ``grpc.max_receive_message_length``
before any handler sees it (RESOURCE_EXHAUSTED, and the handler only sees the
input end). The server sets that transport bound ``RECEIVE_SLACK_BYTES`` above
``Limits.max_message_bytes`` (:func:`transport_receive_limit`), so a message
somewhat over the limit reaches the reader and is refused here with its
number and an error event; only messages beyond the slack are refused by
gRPC alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from ..errors import InputTimeoutError, InvalidInputError, LimitExceededError
from ..v1 import vision_stream_pb2 as pb
from .limits import ClientTracker

RECEIVE_SLACK_BYTES = 1024 * 1024

MEDIA_KINDS = frozenset({"frame", "audio", "media"})


def transport_receive_limit(max_message_bytes: int) -> int:
    """gRPC's receive bound for a server whose messages may be ``max_message_bytes``."""
    return max_message_bytes + RECEIVE_SLACK_BYTES


@dataclass(frozen=True, slots=True)
class BadMessage:
    """Bytes that are not a usable StreamRequest; ``problem`` says why."""

    size: int
    problem: str
    oversize: bool = False


def stream_request_reader(max_bytes: int) -> Callable[[bytes], pb.StreamRequest | BadMessage]:
    """The request deserializer for ``Stream``: never raises (see the module docstring)."""

    def read(data: bytes) -> pb.StreamRequest | BadMessage:
        if len(data) > max_bytes:
            return BadMessage(len(data), f"{len(data)} bytes is over the server's {max_bytes}-byte message limit",
                              oversize=True)
        try:
            return pb.StreamRequest.FromString(data)
        except DecodeError:
            return BadMessage(len(data), f"not a valid StreamRequest ({len(data)} bytes, corrupt protobuf)")

    return read


class StreamInput:
    """Reads one call's messages in order, counting them from 1 (the config).

    Every read is bounded in time: the first by ``first_message_timeout``,
    the later ones by the idle deadline (``idle_timeout`` after the config or
    the last media message; prompts and tool results do not extend it).
    Every message counts against the client's message rate.
    """

    def __init__(self, requests: AsyncIterator[object], *, clients: ClientTracker, key: str) -> None:
        self._requests = aiter(requests)
        self._clients = clients
        self._key = key
        self.count = 0  # messages read so far (the last one's number)
        self._idle_deadline = 0.0

    async def first(self) -> pb.StreamRequest:
        """The config message, or an error (no message, late, corrupt, not a config)."""
        limit = self._clients.limits.first_message_timeout
        request = await self._read(limit, f"no config within {limit:g} s of the call's start")
        if request is None:
            raise InvalidInputError("empty Stream: the first message must be a config")
        kind = request.WhichOneof("payload")
        if kind != "config":
            raise InvalidInputError(f"message 1: the first Stream message must be a config, got {kind or 'nothing'}")
        self.saw_media()
        return request

    async def next(self) -> pb.StreamRequest | None:
        """The next message (None at the client's end of input)."""
        idle = self._clients.limits.idle_timeout
        remaining = self._idle_deadline - time.monotonic()
        request = await self._read(max(remaining, 0.0),
                                   f"no media for {idle:g} s after message {self.count} (idle timeout)")
        if request is not None and request.WhichOneof("payload") in MEDIA_KINDS:
            self.saw_media()
        return request

    def saw_media(self) -> None:
        self._idle_deadline = time.monotonic() + self._clients.limits.idle_timeout

    async def _read(self, wait: float, late: str) -> pb.StreamRequest | None:
        try:
            # Cancelling the read on timeout ends grpc.aio's request iterator;
            # the input ends here anyway.
            message = await asyncio.wait_for(anext(self._requests), wait)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise InputTimeoutError(late) from None
        except DecodeError:  # the generated deserializer (server without stream_request_reader)
            message = BadMessage(0, "not a valid StreamRequest (corrupt protobuf)")
        self.count += 1
        if isinstance(message, BadMessage):
            error = LimitExceededError if message.oversize else InvalidInputError
            raise error(f"message {self.count}: {message.problem}")
        if not isinstance(message, pb.StreamRequest):
            raise InvalidInputError(f"message {self.count}: not a StreamRequest")
        self._clients.take_message(self._key, self.count)
        return message
