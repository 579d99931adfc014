"""The page at ``/`` in a real Chromium: a fake camera made from real footage streams over
``/v1/stream``, and the page shows the session's commentary, detections and latest frame.

Debian's ``chromium`` driven by Playwright for Python (never ``playwright install``: no
browser download). Chromium's fake devices loop a Y4M made from ``../shared/media`` and a
WAV of real speech. Screenshots go to ``tmp_path`` and, when ``VISION_STREAM_ARTIFACTS`` is
set, to that directory too.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers.paths import ROOT
from helpers.server import Served
from helpers.timing import scaled

from vision_stream.v1 import vision_stream_pb2 as pb

CHROMIUM = Path("/usr/bin/chromium")
STATIC = ROOT / "vision_stream" / "server" / "http" / "static"

# Chromium's switches: headless, no network beyond the page, and the fake capture devices
# (--use-fake-ui-for-media-stream grants getUserMedia without a prompt).
BASE_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def test_page_sets_event_text_as_text_only() -> None:
    """Event text is untrusted (model output): the page never parses it as markup."""
    js = (STATIC / "app.js").read_text()
    markup = re.findall(r"\.(?:innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|createContextualFragment", js)
    assert not markup, f"app.js parses text as markup: {markup}"
    html = (STATIC / "index.html").read_text()
    assert 'name="viewport"' in html
    assert "http://" not in html + js and "https://" not in html + js, "no CDN or external resource"


def _playwright_api():  # type: ignore[no-untyped-def]
    if not CHROMIUM.exists():
        pytest.skip("chromium is absent: apt-get install -y --no-install-recommends chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is absent: .venv/bin/pip install playwright (never `playwright install`)")
    return async_playwright


def _expected_miss(status: int, url: str) -> bool:
    """404 from frames/latest until the model has seen a frame (the page polls it every second)."""
    return status == 404 and url.endswith("/frames/latest")


def _keep(path: Path) -> None:
    """Copy an artifact to $VISION_STREAM_ARTIFACTS when set."""
    target = os.environ.get("VISION_STREAM_ARTIFACTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


async def _start_watch(served: Served) -> str:
    """A detached, looping Watch of the sample clip over gRPC; returns its session id."""
    call = served.stub.Watch(pb.WatchRequest(source="sample.mp4", loop=True, detach=True,
                                             config=pb.SessionConfig(backend="local", commentary_interval=2,
                                                                     conditions=[pb.WatchCondition(
                                                                         id="cut", text="scene cut")])))
    try:
        async for event in call:
            if event.HasField("session_started"):
                return event.session_id
    finally:
        call.cancel()
    raise AssertionError("the Watch ended before session_started")


@asynccontextmanager
async def _page(fake_devices: list[str], problems: list[str],
                allowed: Callable[[int, str], bool] = lambda status, url: False) -> AsyncIterator[Any]:
    """A Chromium page with the fake devices; page errors, console errors and HTTP errors
    (other than a poll of frames/latest before the first frame, or what ``allowed`` says)
    are appended to ``problems``."""
    async_playwright = _playwright_api()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=BASE_ARGS + fake_devices,
                                           timeout=scaled(30.0) * 1000)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 1000})
            page.set_default_timeout(scaled(30.0) * 1000)
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            # A failed fetch shows as a console error without its URL: responses name it instead.
            page.on("console", lambda m: problems.append(f"console: {m.text}")
                    if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}")
                    if r.status >= 400 and not (_expected_miss(r.status, r.url) or allowed(r.status, r.url))
                    else None)
            yield page
        finally:
            await browser.close()


async def _use_camera(page: Any) -> str:
    """Click "Use my camera" (offline analyzer, commentary every 2 s); returns the session id once
    commentary, a detection from the pictures and the latest frame are on the page."""
    await page.select_option("#cam-backend", "local")
    await page.fill("#cam-interval", "2")
    await page.click("text=Use my camera")
    await page.wait_for_selector("#commentary li:not(.partial)")
    # A detection from the pictures (not only the microphone's audio_activity).
    await page.locator("#detections li b").filter(has_not_text="audio_activity").first.wait_for()
    # ... shown with the frame it names (GET /frames/{id}, decoded by the browser).
    await page.wait_for_function("[...document.querySelectorAll('#detections .thumb')].some(i => i.naturalWidth > 0)")
    session_id = (await page.text_content("#live-session")) or ""
    assert session_id, "the live view names the camera's session"
    # The session list (refreshed every 2 s) shows it, running.
    row = page.locator(f'#sessions tr[data-session="{session_id}"]')
    await row.wait_for()
    assert "running" in ((await row.text_content()) or "")
    # The latest frame the model saw: a JPEG fetched from /frames/latest, decoded by the browser.
    await page.wait_for_function("document.getElementById('latest-frame').naturalWidth > 0")
    natural = await page.eval_on_selector("#latest-frame", "img => [img.naturalWidth, img.naturalHeight]")
    assert natural == [320, 180], f"the model saw the camera's 320x180 frames, got {natural}"
    return session_id


async def _open_from_list(page: Any, session_id: str) -> None:
    """Open a listed session's live view (events over SSE) and wait for its commentary and frame."""
    row = page.locator(f'#sessions tr[data-session="{session_id}"]')
    await row.wait_for()
    await row.click()
    await page.wait_for_function(f"document.getElementById('live-session').textContent === {session_id!r}")
    await page.wait_for_selector("#commentary li:not(.partial)")
    await page.wait_for_function("document.getElementById('latest-frame').naturalWidth > 0")


async def _screenshot(page: Any, path: Path) -> None:
    await page.screenshot(path=str(path), full_page=True)
    _keep(path)


@pytest.mark.slow
async def test_camera_and_watch_sessions_in_chromium(http_served: Served, fake_devices: list[str],
                                                      tmp_path: Path) -> None:
    problems: list[str] = []
    async with _page(fake_devices, problems) as page:
        await page.goto(f"http://127.0.0.1:{http_served.running.http_port}/")
        await _use_camera(page)
        await page.wait_for_selector("#stats dd")
        await _screenshot(page, tmp_path / "page_camera.png")

        # An existing Watch session's live view, opened from the list.
        watch_id = await _start_watch(http_served)
        await _open_from_list(page, watch_id)
        # The clip's scene cut (6.6 s) fires the condition: shown above the rest with its frame.
        await page.wait_for_function(
            "[...document.querySelectorAll('#alerts li.fired img.thumb')].some(i => i.naturalWidth > 0)")
        assert "scene cut" in await page.inner_text("#alerts")
        await _screenshot(page, tmp_path / "page_watch.png")

        # Readable on a phone: one column.
        await page.set_viewport_size({"width": 390, "height": 844})
        columns = await page.eval_on_selector(".live-grid", "g => getComputedStyle(g).gridTemplateColumns")
        assert len(columns.split()) == 1, columns
        await _screenshot(page, tmp_path / "page_phone.png")
        await page.click("#camera-stop")
    assert not problems, problems


@pytest.mark.slow
async def test_page_with_tokens_in_chromium(token_served: tuple[Served, str], fake_devices: list[str],
                                            tmp_path: Path) -> None:
    """With --auth-tokens: the page says a token is needed; once entered it goes as a Bearer header
    on fetch and as ?access_token= on the WebSocket and on EventSource."""
    served, token = token_served
    entered: list[bool] = []  # the 401s before the token was entered are the page's cue, not a problem
    problems: list[str] = []
    async with _page(fake_devices, problems, allowed=lambda status, url: status == 401 and not entered) as page:
        await page.goto(f"http://127.0.0.1:{served.running.http_port}/")
        await page.wait_for_function(
            "document.getElementById('sessions-status').textContent.includes('enter a token')")
        entered.append(True)
        await page.fill("#token", token)
        await page.click("text=Use token")
        await page.wait_for_function(
            "document.getElementById('sessions-status').textContent.startsWith('No sessions')")
        session_id = await _use_camera(page)           # WebSocket with ?access_token=, fetch with Bearer
        # Stop ends the input ({"end": true}): the session drains, session_ended comes back on the
        # socket, then the server closes it with 1000.
        await page.click("#camera-stop")
        await page.wait_for_function(
            "document.getElementById('live-status').textContent === 'Session ended: end_of_input'")
        await page.wait_for_function(
            "document.getElementById('camera-status').textContent === 'Camera session ended.'")
        await page.evaluate("live.reset('')")          # forget the camera's view, then reopen it by SSE
        await _open_from_list(page, session_id)        # EventSource with ?access_token=
        await _screenshot(page, tmp_path / "page_tokens.png")
    assert not problems, problems
