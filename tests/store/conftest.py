"""A real nats-server with JetStream on 127.0.0.1 (a free port, a temporary store dir):
vision_stream/testing/nats_server.py, shared with the fleet cluster. Tests needing it
skip, naming the install command, when the binary is absent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.timing import scaled

from vision_stream.testing.nats_server import INSTALL, NatsServer, nats_server_binary


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    binary = nats_server_binary()
    if binary is None:
        pytest.skip(f"nats-server is not installed: {INSTALL}")
    server = NatsServer(binary, tmp_path / "jetstream")
    server.start(within=scaled(10.0))
    try:
        yield server
    finally:
        server.stop()
