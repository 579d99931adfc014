"""One redaction for URLs, free text and every log record (ours, httpx's, websockets')."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from websockets.asyncio.client import connect

from vision_stream.redact import (
    PLACEHOLDER,
    RedactingFilter,
    Secret,
    install_log_redaction,
    is_secret_name,
    redact_url,
    scrub,
)
from vision_stream.testing import EmulatorKnobs, LiveEmulator
from vision_stream.testing.live_emulator import GEMINI_PATH

pytestmark = pytest.mark.timeout(30)

KEY = "AIzaSyD-not-a-real-key-0123456789"
TOKEN = "tok-5f1c2e7a9b3d4c8e"

URLS = [
    # passwords with the characters that break urlsplit: '#', '/', '@', ':'
    ("rtsp://admin:pa#ss/w@rd@cam/x", "rtsp://admin:***@cam/x", ("pa#ss", "w@rd")),
    ("rtsp://admin:p:a/s@10.0.0.5:554/live?ch=1", "rtsp://admin:***@10.0.0.5:554/live?ch=1", ("p:a/s",)),
    ("rtsp://viewer:@cam/x", "rtsp://viewer:***@cam/x", ()),
    # a token as user name (no password), and a user name that reads like a key
    ("https://ghp_abcdef0123456789abcdef@host/x", "https://***@host/x", ("ghp_",)),
    ("https://TOKEN@host/x", "https://***@host/x", ("TOKEN",)),
    ("rtsp://AKIAIOSFODNN7EXAMPLE:pw@cam/x", "rtsp://***@cam/x", ("AKIA", "pw@")),
    # credentials in the query and the fragment, any case, percent-encoded names
    ("http://cam/snap.cgi?user=admin&pwd=s3cret&res=1", "http://cam/snap.cgi?user=admin&pwd=***&res=1", ("s3cret",)),
    ("http://cam/x?PASSWD=a,b&Token=t1&api%5Fkey=k2", "http://cam/x?PASSWD=***&Token=***&api%5Fkey=***",
     ("a,b", "t1", "k2")),
    ("https://bucket.s3.amazonaws.com/o?X-Amz-Credential=AK/2024&X-Amz-Signature=ff00&v=2",
     "https://bucket.s3.amazonaws.com/o?X-Amz-Credential=***&X-Amz-Signature=***&v=2", ("AK/2024", "ff00")),
    ("https://storage.googleapis.com/b/o?X-Goog-Signature=abc123", "https://storage.googleapis.com/b/o?X-Goog-Signature=***",
     ("abc123",)),
    ("https://h/cb#access_token=zz9&state=ok", "https://h/cb#access_token=***&state=ok", ("zz9",)),
    ("https://h/x?key=K&sig=S&session=abc&client_secret=C", "https://h/x?key=***&sig=***&session=***&client_secret=***",
     ("=K", "=S", "abc", "=C")),
    # nothing secret: unchanged
    ("http://host/path/a@b?page=2", "http://host/path/a@b?page=2", ()),
    # a path '@' after host:port reads like 'user:password@' (a password may hold '/'): over-redacted
    # by design, never under-
    ("http://host:8080/path/a@b?page=2", "http://host:***@b?page=2", ("8080",)),
    ("rtsp://10.0.0.5/stream1", "rtsp://10.0.0.5/stream1", ()),
    ("http://[::1", "http://[::1", ()),  # unparseable for urlsplit; never raises here
]


@pytest.mark.parametrize(("url", "expected", "hidden"), URLS)
def test_redact_url(url: str, expected: str, hidden: tuple[str, ...]) -> None:
    shown = redact_url(url)
    assert shown == expected
    for part in hidden:
        assert part not in shown


def test_secret_names() -> None:
    for name in ("pwd", "passwd", "password", "pass", "token", "access_token", "auth", "key", "api_key", "apikey",
                 "sig", "signature", "secret", "client_secret", "X-Amz-Signature", "x-amz-credential",
                 "X-Goog-Signature", "session", "camera_password", "oauth_token", "API_KEY"):
        assert is_secret_name(name), name
    for name in ("user", "page", "ch", "res", "model", "keyframe", "state", "v"):
        assert not is_secret_name(name), name


def test_scrub_free_text() -> None:
    text = (f"open failed: rtsp://admin:pa/ss@cam/x?pwd=zz9: Connection refused; "
            f"> GET /ws/path?key={KEY} HTTP/1.1\n> x-goog-api-key: {KEY}\n"
            f"> Authorization: Bearer {TOKEN}\nretry with token={TOKEN}, model=m; known {TOKEN}!")
    shown = scrub(text, TOKEN)
    for secret in (KEY, TOKEN, "pa/ss", "zz9"):
        assert secret not in shown
    assert "rtsp://admin:***@cam/x?pwd=***: Connection refused" in shown  # sentence punctuation stays outside
    assert "model=m" in shown and shown.count(PLACEHOLDER) >= 6
    assert scrub("nothing to hide: rtsp://cam/x, page=2") == "nothing to hide: rtsp://cam/x, page=2"
    assert repr(Secret(KEY)) == "Secret('***')" and KEY not in str(Secret(KEY))


def test_filter_scrubs_args_and_tracebacks() -> None:
    records: list[str] = []
    handler = _ListHandler(records)
    handler.addFilter(RedactingFilter(TOKEN))
    log = logging.getLogger("tests.redact.unit")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("camera %s failed with %r", "rtsp://u:p#w@cam/x", {"token": TOKEN})
        try:
            raise ConnectionError(f"cannot reach https://h/x?api_key={KEY}")
        except ConnectionError:
            log.exception("request failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    joined = "\n".join(records)
    assert "rtsp://u:***@cam/x" in joined and "request failed" in joined and "api_key=***" in joined
    for secret in (TOKEN, KEY, "p#w"):
        assert secret not in joined


class _ListHandler(logging.Handler):
    """Keeps every record's final formatted text (what a log file would hold)."""

    def __init__(self, out: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.out = out
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append(self.format(record))


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def root_at_debug() -> Iterator[list[str]]:
    """A handler on the root logger, with the filter put there by :func:`install_log_redaction`."""
    records: list[str] = []
    handler = _ListHandler(records)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    installed = install_log_redaction()  # patterns only: no secret value registered by this test
    try:
        yield records
    finally:
        root.setLevel(level)
        root.removeHandler(handler)
        for h in root.handlers:
            h.removeFilter(installed)


async def test_httpx_and_websockets_own_log_records_are_scrubbed(http_server: str, root_at_debug: list[str]) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{http_server}/v1/models?api_key={KEY}&token={TOKEN}&page=2",
                                    headers={"x-goog-api-key": KEY, "Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        with_userinfo = http_server.replace("http://", f"http://admin:{TOKEN}@")
        response = await client.get(f"{with_userinfo}/snap?pwd={TOKEN}")
        assert response.status_code == 200
    async with LiveEmulator(EmulatorKnobs(api_keys=(KEY,))) as emu:
        url = f"{emu.url}{GEMINI_PATH.format(version='v1beta')}?key={KEY}&access_token={TOKEN}"
        # websockets' default loggers ("websockets.client"): request line and every header at DEBUG.
        async with connect(url, additional_headers={"x-goog-api-key": KEY, "Authorization": f"Bearer {TOKEN}"}):
            await asyncio.sleep(0)
    records = root_at_debug
    joined = "\n".join(records)
    assert any("HTTP Request: GET" in r and "api_key=***" in r for r in records), joined[-2000:]
    assert any("> GET /ws/" in r and "key=***" in r for r in records), joined[-2000:]
    assert any("> x-goog-api-key: ***" in r.lower() or "x-goog-api-key: ***" in r for r in records)
    for secret in (KEY, TOKEN):
        assert secret not in joined


def test_install_log_redaction_is_idempotent_per_handler() -> None:
    handler = logging.NullHandler()
    logger = logging.getLogger("tests.redact.install")
    logger.addHandler(handler)
    try:
        install_log_redaction(logger=logger)
        install_log_redaction(logger=logger)
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


def test_a_one_letter_key_does_not_garble_messages() -> None:
    """``GEMINI_API_KEY=x`` (the emulator examples): "next" stays "next"; the header pattern still hides it."""
    shown = scrub("next attempt in 0.5 s; x-goog-api-key: x", "x")
    assert shown.startswith("next attempt in 0.5 s") and shown.endswith(f"x-goog-api-key: {PLACEHOLDER}"), shown
