"""``POST /v1/live-tokens``: direct mode, an ephemeral Gemini token for a client that
must talk to Google itself.

The trade-off: the browser then holds a credential and its own fragile
WebSocket to Google, and none of this server's limits, failover or events
apply to that session. The token is as narrow as Google allows: one use, a new
session only within ``NEW_SESSION_SECONDS``, messages only within
``EXPIRE_SECONDS``, and the model locked to the server's Live model
(``bidiGenerateContentSetup``). The server's key goes to Google in
``x-goog-api-key`` only; the answer carries the token's name, never the key.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import web

from ...backends.gemini_api import API_KEY_HEADER, GEMINI_REST_BASE
from ...errors import BackendError, ServiceError, TransportError
from ...redact import scrub
from .auth import needs
from .state import SERVICE

__all__ = ["EXPIRE_SECONDS", "NEW_SESSION_SECONDS", "mint_live_token"]

EXPIRE_SECONDS = 10 * 60.0
NEW_SESSION_SECONDS = 60.0
TOKENS_PATH = "/v1alpha/auth_tokens"  # Google's ephemeral tokens are v1alpha only
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


def rfc3339(epoch: float) -> str:
    """A google.protobuf.Timestamp in JSON: ``2026-09-15T12:00:00.000000Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def mint_live_token(api_key: str, *, rest_url: str | None, model: str) -> dict[str, Any]:
    """Google's ``AuthToken`` JSON for a one-use token locked to ``model``."""
    now = time.time()
    locked = model if model.startswith("models/") else f"models/{model}"
    body: dict[str, Any] = {
        "uses": 1,
        "expireTime": rfc3339(now + EXPIRE_SECONDS),
        "newSessionExpireTime": rfc3339(now + NEW_SESSION_SECONDS),
        "bidiGenerateContentSetup": {"model": locked},
    }
    url = (rest_url or GEMINI_REST_BASE).rstrip("/") + TOKENS_PATH
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(url, json=body, headers={API_KEY_HEADER: api_key})
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach the Gemini API to mint a token: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise ServiceError(f"the Gemini API refused to mint a token (HTTP {response.status_code}): "
                           f"{scrub(_message(response), api_key)[:200]}", http_status=response.status_code)
    try:
        token = response.json()
        name = token["name"]
    except (ValueError, KeyError, TypeError):
        raise BackendError("the Gemini API answered the token request without a token name") from None
    return {"name": name, "model": locked, "uses": token.get("uses", 1),
            "expireTime": token.get("expireTime", body["expireTime"]),
            "newSessionExpireTime": token.get("newSessionExpireTime", body["newSessionExpireTime"])}


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


@needs("Stream")
async def live_tokens(request: web.Request) -> web.Response:
    options = request.app[SERVICE].config.backends
    if not options.api_key:
        raise TransportError("this server has no Gemini API key, so it cannot mint tokens for direct mode "
                             "(use /v1/stream: the server holds the model session)")
    token = await mint_live_token(options.api_key.reveal(), rest_url=options.rest_url, model=options.live_model)
    return web.Response(status=201, text=json.dumps(token), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/live-tokens", live_tokens)
