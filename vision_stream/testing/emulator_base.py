"""What both Gemini emulators share: the server lifecycle and the proto3 Duration they write.

:class:`EmulatorServer` gives the Live (WebSocket) and REST (HTTP/1.1)
emulators one shape: ``start()``/``close()``, ``async with``, ``port`` and
``url``. Each emulator says how it listens (:meth:`EmulatorServer._listen`)
and what to stop besides the listening socket (:meth:`EmulatorServer._stop_connections`).
A closed emulator remembers its port, so a later ``start()`` comes back on the
same one (an outage, then recovery).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import ClassVar, Protocol, Self


class Listening(Protocol):
    """The part of ``asyncio.Server`` and ``websockets``' ``Server`` the lifecycle uses."""

    @property
    def sockets(self) -> Iterable[socket.socket]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


def proto_duration(seconds: float) -> str:
    """Proto3 JSON Duration as Google writes it: ``"50s"`` or ``"0.300s"``."""
    return f"{seconds:.0f}s" if float(seconds).is_integer() else f"{seconds:.3f}s"


class EmulatorServer:
    """Lifecycle of a loopback emulator (see module docstring). ``scheme``: of :attr:`url`."""

    scheme: ClassVar[str] = "http"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self._server: Listening | None = None

    async def _listen(self) -> Listening:
        """Start listening on ``self.host``/``self._port``."""
        raise NotImplementedError

    async def _stop_connections(self) -> None:
        """After the listening socket closed: end what is still running (default: nothing)."""

    async def start(self) -> Self:
        self._server = await self._listen()
        return self

    async def close(self) -> None:
        """Stop listening and end every connection. Idempotent."""
        server = self._server
        if server is None:
            return
        self._port = self.port  # a later start() comes back on the same port
        server.close()
        await self._stop_connections()
        await server.wait_closed()
        self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """``scheme://host:port`` (clients append the API's path)."""
        return f"{self.scheme}://{self.host}:{self.port}"
