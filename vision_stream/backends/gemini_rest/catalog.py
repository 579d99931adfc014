"""The model catalogue: which models the key can use, and over which API (``GET /v1beta/models``).

A model speaks Live when ``supportedGenerationMethods`` lists
``bidiGenerateContent`` (LIVE_API.md "Models"), and REST when it lists
``generateContent``. The list is paged (``pageSize``/``nextPageToken``).
It is a REST call, so it takes :class:`RestSettings`: the CLI's ``models``
command points it at the REST host (Google serves both APIs from one host).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ...errors import ProtocolError, ServiceError, TransportError
from ...redact import scrub
from ...retry import is_transient_http
from ..gemini_api import api_key_headers, bare_model_id
from .settings import RestSettings

LIVE_METHOD = "bidiGenerateContent"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of the models list. ``name`` is ``models/<id>``."""

    name: str
    display_name: str = ""
    supported_generation_methods: tuple[str, ...] = ()
    input_token_limit: int = 0
    output_token_limit: int = 0

    @property
    def model_id(self) -> str:
        return bare_model_id(self.name)

    @property
    def live(self) -> bool:
        """True when the model accepts ``BidiGenerateContent`` (the Live API)."""
        return LIVE_METHOD in self.supported_generation_methods


def parse_models_page(body: Mapping[str, Any]) -> tuple[list[ModelInfo], str]:
    """Models of one page of ``GET /v1beta/models``, and the next page token ("" at the end)."""
    models = []
    for entry in body.get("models", ()):
        models.append(
            ModelInfo(
                name=str(entry.get("name", "")),
                display_name=str(entry.get("displayName", "")),
                supported_generation_methods=tuple(str(m) for m in entry.get("supportedGenerationMethods", ())),
                input_token_limit=int(entry.get("inputTokenLimit", 0) or 0),
                output_token_limit=int(entry.get("outputTokenLimit", 0) or 0),
            )
        )
    return models, str(body.get("nextPageToken", "") or "")


async def list_models(
    settings: RestSettings,
    *,
    client: httpx.AsyncClient | None = None,
    page_size: int = 100,
    max_pages: int = 20,
) -> list[ModelInfo]:
    """All models ``{base}/{api_version}/models`` lists, with their generation methods.

    The key goes in ``x-goog-api-key`` (never in the URL). Errors become
    :class:`ServiceError` (HTTP status, Google's message) or :class:`TransportError`.
    """
    url = f"{settings.base}/{settings.api_version}/models"
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=settings.timeouts.connect)
    secrets = settings.secrets()
    models: list[ModelInfo] = []
    token = ""
    try:
        for _ in range(max_pages):
            params: dict[str, str | int] = {"pageSize": page_size}
            if token:
                params["pageToken"] = token
            try:
                response = await http.get(url, params=params, headers=api_key_headers(settings.api_key))
            except httpx.HTTPError as exc:
                raise TransportError(scrub(f"listing models failed: {type(exc).__name__}: {exc}", *secrets)) from None
            if response.status_code != 200:
                raise ServiceError(
                    scrub(f"listing models failed: HTTP {response.status_code}: {_error_message(response)}", *secrets),
                    http_status=response.status_code,
                    retryable=is_transient_http(response.status_code),
                )
            try:
                page, token = parse_models_page(response.json())
            except (ValueError, TypeError, AttributeError) as exc:
                raise ProtocolError(f"models list is not the expected JSON: {exc}") from None
            models.extend(page)
            if not token:
                break
    finally:
        if own_client:
            await http.aclose()
    return models


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
