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
from pathlib import Path

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
                                             config=pb.SessionConfig(backend="local", commentary_interval=2)))
    try:
        async for event in call:
            if event.HasField("session_started"):
                return event.session_id
    finally:
        call.cancel()
    raise AssertionError("the Watch ended before session_started")


@pytest.mark.slow
async def test_camera_and_watch_sessions_in_chromium(http_served: Served, fake_devices: list[str],
                                                      tmp_path: Path) -> None:
    async_playwright = _playwright_api()
    port = http_served.running.http_port
    base = f"http://127.0.0.1:{port}"
    timeout_ms = scaled(30.0) * 1000
    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=BASE_ARGS + fake_devices,
                                           timeout=timeout_ms)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 1000})
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            # A failed fetch shows as a console error without its URL: responses name it instead.
            page.on("console", lambda m: problems.append(f"console: {m.text}")
                    if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.url}")
                    if r.status >= 400 and not _expected_miss(r.status, r.url) else None)
            await page.goto(base + "/")

            # Use my camera: the offline analyzer comments every 2 s.
            await page.select_option("#cam-backend", "local")
            await page.fill("#cam-interval", "2")
            await page.click("text=Use my camera")
            await page.wait_for_selector("#commentary li:not(.partial)", timeout=timeout_ms)
            # A detection from the pictures (not only the microphone's audio_activity).
            await page.locator("#detections li b").filter(has_not_text="audio_activity").first.wait_for(
                timeout=timeout_ms)
            session_id = (await page.text_content("#live-session")) or ""
            assert session_id, "the live view names the camera's session"
            # The session list (refreshed every 2 s) shows it, running.
            row = page.locator(f'#sessions tr[data-session="{session_id}"]')
            await row.wait_for(timeout=timeout_ms)
            assert "running" in ((await row.text_content()) or "")
            # The latest frame the model saw: a JPEG fetched from /frames/latest, decoded by the browser.
            await page.wait_for_function(
                "document.getElementById('latest-frame').naturalWidth > 0", timeout=timeout_ms)
            natural = await page.eval_on_selector("#latest-frame", "img => [img.naturalWidth, img.naturalHeight]")
            assert natural == [320, 180], f"the model saw the camera's 320x180 frames, got {natural}"
            await page.wait_for_selector("#stats dd", timeout=timeout_ms)
            shot = tmp_path / "page_camera.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)

            # An existing Watch session's live view, opened from the list (events over SSE).
            watch_id = await _start_watch(http_served)
            watch_row = page.locator(f'#sessions tr[data-session="{watch_id}"]')
            await watch_row.wait_for(timeout=timeout_ms)
            await watch_row.click()
            await page.wait_for_function(
                f"document.getElementById('live-session').textContent === {watch_id!r}", timeout=timeout_ms)
            await page.wait_for_selector("#commentary li:not(.partial)", timeout=timeout_ms)
            await page.wait_for_function(
                "document.getElementById('latest-frame').naturalWidth > 0", timeout=timeout_ms)
            shot = tmp_path / "page_watch.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)

            # Readable on a phone: one column.
            await page.set_viewport_size({"width": 390, "height": 844})
            columns = await page.eval_on_selector(".live-grid", "g => getComputedStyle(g).gridTemplateColumns")
            assert len(columns.split()) == 1, columns
            shot = tmp_path / "page_phone.png"
            await page.screenshot(path=str(shot), full_page=True)
            _keep(shot)

            await page.click("#camera-stop")
        finally:
            await browser.close()
    assert not problems, problems
