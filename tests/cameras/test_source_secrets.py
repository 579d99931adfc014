"""Query-string credentials (``?pwd=``, ``?token=``) of a watched camera reach no client and no log line."""

from __future__ import annotations

import logging

import pytest
from helpers.cameras import MjpegServer
from helpers.watching import CONFIG, Follower, is_commentary, serve_cameras

from vision_stream.redact import RedactingFilter
from vision_stream.v1 import vision_stream_pb2 as pb

pytestmark = pytest.mark.timeout(60)

PWD = "q-Secret-pwd-77"
TOKEN = "q-Secret-token-88"


@pytest.mark.slow  # ~7 s: a paced camera through the server
async def test_query_credentials_of_a_camera_url_never_reach_events_listsessions_or_logs(
    axis_mjpeg: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter())  # what `vision-stream serve` installs at start-up
    camera = MjpegServer(axis_mjpeg, fps=10)
    c = await serve_cameras()
    try:
        url = f"{camera.url(auth=f'admin:{PWD}@')}?user=admin&pwd={PWD}&passwd={PWD}&token={TOKEN}"
        follower = Follower(c.stub.Watch(pb.WatchRequest(source=url, config=CONFIG)))
        started = await follower.wait_for(lambda e: e.HasField("session_started"), 20)
        await follower.wait_for(is_commentary, 20)
        info = (await c.stub.ListSessions(pb.ListSessionsRequest())).sessions[0]
        await follower.cancel()
    finally:
        await c.close()
        camera.close()
    source = started.session_started.source
    assert source.startswith("http://admin:***@127.0.0.1:") and "pwd=***&passwd=***&token=***" in source, source
    assert info.source == source
    shown = [str(e) for e in follower.events] + [str(info), caplog.text]
    assert not any(PWD in text or TOKEN in text for text in shown)
    assert "HTTP Request: GET" in caplog.text  # httpx did log the request, scrubbed
