"""Gemini Live test helpers: recorded vectors, synthetic scenes, test-sized settings, the emulator
with SDK schema checks on exit (its fixture, ``live_emulator``, is in tests/backends/gemini_live/conftest.py)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from helpers.events import Collector
from vision_stream.backends.base import BackendSession
from vision_stream.backends.gemini_live import LiveSettings, LiveTimeouts, ReconnectPolicy
from vision_stream.config import SessionSettings
from vision_stream.events import BackendEvent, Commentary
from vision_stream.testing import EmulatorKnobs, LiveEmulator

API_KEY = "AIzaTEST-secret-key-0123456789"
_ENTRY = re.compile(rb"([<>])(\d+) ")


def read_vector(path: Path) -> list[tuple[str, bytes]]:
    """Entries of a ``*.websocket.log``: (">" client or "<" server, exact message bytes).

    ``N`` counts the message plus the one newline that separates entries.
    """
    data = path.read_bytes()
    entries: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(data):
        match = _ENTRY.match(data, pos)
        assert match is not None, f"{path.name}: bad entry at byte {pos}"
        size = int(match.group(2))
        body = data[match.end(): match.end() + size]
        entries.append((match.group(1).decode(), body[:-1] if body.endswith(b"\n") else body))
        pos = match.end() + size
        while data[pos:pos + 1] == b"\n":
            pos += 1
    return entries



def scene(kind: str, *, size: tuple[int, int] = (432, 768)) -> np.ndarray:
    """Distinct synthetic scenes: "red" (dark red field), "bright" (light grey with a white box)."""
    image = np.zeros((*size, 3), np.uint8)
    if kind == "red":
        image[:] = (0, 0, 190)
    elif kind == "green":
        image[:] = (0, 170, 0)
    elif kind == "bright":
        image[:] = (200, 200, 200)
        cv2.rectangle(image, (100, 100), (400, 300), (255, 255, 255), -1)
    else:
        raise ValueError(kind)
    return image


class LiveEvents(Collector[BackendEvent]):
    """A Live session's events, read in an owned task (helpers.events.Collector)."""

    def __init__(self, session: BackendSession) -> None:
        super().__init__(session.events())

    def finals(self) -> list[Commentary]:
        return [c for c in self.payloads(Commentary) if c.final]


def sdk_types():
    return pytest.importorskip("google.genai.types")


def validate_client_json(text: str) -> None:
    """Google's own schema (extra fields forbidden, camelCase aliases, base64 bytes).

    One known gap of the SDK's types: ``LiveClientSetup`` lacks
    ``realtimeInputConfig``, yet the SDK's own converter puts
    ``setup.realtimeInputConfig`` on the wire (google/genai/_live_converters.py,
    ``_LiveConnectConfig_to_mldev``). That key is checked against
    ``types.RealtimeInputConfig`` instead, the rest against ``LiveClientMessage``.
    """
    types = sdk_types()
    obj = json.loads(text)
    setup = obj.get("setup") if isinstance(obj, dict) else None
    if isinstance(setup, dict) and "realtimeInputConfig" in setup:
        types.RealtimeInputConfig.model_validate_json(json.dumps(setup.pop("realtimeInputConfig")))
        text = json.dumps(obj)
    types.LiveClientMessage.model_validate_json(text)


def validate_server_json(text: str | bytes) -> None:
    sdk_types().LiveServerMessage.model_validate_json(text)


def self_signed_pem() -> tuple[bytes, bytes]:
    """A fresh self-signed certificate for 127.0.0.1 and its key, as PEM (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def loopback_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts for 127.0.0.1: a fresh self-signed certificate the client trusts.

    For clients that always use TLS, such as the official SDK's Live connect (it
    turns any base URL into ``wss://``).
    """
    cert_pem, key_pem = self_signed_pem()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:  # load_cert_chain reads files only
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


def fast_settings(url: str, **overrides: object) -> LiveSettings:
    """Client settings with test-sized timeouts and backoff."""
    base = LiveSettings(
        base_url=url,
        api_key=API_KEY,
        max_fps=10.0,
        timeouts=LiveTimeouts(connect=3.0, setup=3.0, response=3.0, close=0.5, ping_interval=5.0,
                              ping_timeout=5.0, close_flush=8.0),
        reconnect=ReconnectPolicy(max_attempts=4, base_backoff=0.02, max_backoff=0.2, quota_backoff=0.2,
                                  stable_after=0.5, go_away_margin=0.05),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def session_settings(**overrides: object) -> SessionSettings:
    return SessionSettings(session_id="live-test", **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def checked_emulator(knobs: EmulatorKnobs | None = None, *, strict: bool = True,
                           **options: Any) -> AsyncIterator[LiveEmulator]:
    """A running Live emulator; on exit (``strict``) every client message it received and
    every answer it sent validate against google-genai's schema. ``options``: LiveEmulator's
    keyword arguments (``tokens=``, ``tls=``)."""
    emulator = LiveEmulator(knobs or EmulatorKnobs(api_keys=(API_KEY,)), **options)
    async with emulator:
        yield emulator
    if strict:
        for message in emulator.received:
            validate_client_json(message.text)
        for text in emulator.sent:
            validate_server_json(text)
