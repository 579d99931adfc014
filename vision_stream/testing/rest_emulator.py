"""A loopback emulator of Google's REST ``generateContent`` API, with fault knobs.

Serves (LIVE_API.md §2, to the letter):

- ``POST /{v}/models/{m}:generateContent``: one ``GenerateContentResponse``
  (``candidates[0].content.parts[].text``, ``finishReason``, ``usageMetadata``
  with ``promptTokenCount``/``candidatesTokenCount``/``totalTokenCount``).
- ``POST /{v}/models/{m}:streamGenerateContent?alt=sse``: ``text/event-stream``,
  each event ``data: {json}`` + a blank line, each a whole response holding a
  text delta; the last one has ``finishReason``.
- ``GET /{v}/models``: the models list (Live models with ``bidiGenerateContent``,
  REST models with ``generateContent``), paged with ``pageSize``/``pageToken``.
- ``POST /v1alpha/auth_tokens``: mints an ephemeral token for the Live half
  (:mod:`.auth_tokens`; ``uses``, ``expireTime``, ``newSessionExpireTime``);
  like Google, only on ``v1alpha``, and only with an API key.

``{v}`` is any version Google serves: ``v1`` (the official SDK's default),
``v1beta``, ``v1alpha``; any other path answers 404 ``NOT_FOUND``.

Answers describe the images actually sent (the offline analyzer's
``describe_jpegs``). Auth: ``x-goog-api-key`` (``?key=`` accepted, as Google
does); none -> 403, a key not in ``api_keys`` -> 400 ``API_KEY_INVALID``. A
Live-only model name -> 404 ``NOT_FOUND``. Unknown body fields -> 400, like
Google's JSON parser.

HTTP/1.1 over asyncio streams with ``h11`` (the sans-I/O HTTP library httpx's
own transport uses, so it is installed wherever httpx is): keep-alive, and
chunked transfer for SSE so chunks can be paced, cut by an error, or stalled.

Knobs and faults: ``rest_knobs`` (:class:`RestKnobs`, :class:`RestFault`);
what is refused before answering: ``rest_validation``. This module is the
server: HTTP plumbing, the models page, quota and fault answers, SSE.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11

from .auth_tokens import AuthTokens, TokenRefused
from .emulator_base import EmulatorServer, Listening, proto_duration
from .live_catalogue import LIVE_MODELS
from .live_usage import jpeg_tokens, text_tokens
from .rest_knobs import RestKnobs
from .rest_validation import GoogleError, bad_key, check_key, is_live_only, validate_generate

log = logging.getLogger("vision_stream.testing.rest_emulator")

REST_MODELS = ("gemini-flash-latest", "gemini-3.8-flash", "gemini-3.6-flash", "gemini-3.5-flash-lite",
               "gemini-2.5-flash")
_PATH = re.compile(r"^/(v1beta|v1alpha|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_LIST_PATH = re.compile(r"^/(v1beta|v1alpha|v1)/models$")
TOKENS_PATH = "/v1alpha/auth_tokens"
MAX_BODY = 32 * 1024 * 1024
QUOTA_TEXT = ("You exceeded your current quota, please check your plan and billing details. For more information "
              "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.")


@dataclass(slots=True)
class RestRequest:
    """One request as received (for tests): the key itself is never kept."""

    number: int
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names; x-goog-api-key value replaced by "<present>"
    body: Any
    arrived: float  # monotonic seconds
    model: str = ""
    stream: bool = False
    key_in_header: bool = False
    key_in_query: bool = False
    status: int = 0
    fault: str = ""


class RestEmulator(EmulatorServer):
    """``async with RestEmulator(knobs) as emu: emu.url`` ... ``knobs`` may be replaced at any time."""

    scheme = "http"  # the client appends /v1beta/models/...

    def __init__(self, knobs: RestKnobs | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 tokens: AuthTokens | None = None) -> None:
        super().__init__(host=host, port=port)
        self.knobs = knobs or RestKnobs()
        # Ephemeral tokens minted here are spent by the Live emulator sharing this store.
        self.tokens = tokens if tokens is not None else AuthTokens()
        self.requests: deque[RestRequest] = deque(maxlen=self.knobs.record_limit)
        self.request_count = 0
        self._applied: dict[int, int] = {}  # id(fault) -> times applied
        self._handlers: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._shutdown = asyncio.Event()  # stalled answers wait on it

    # ---- lifecycle -----------------------------------------------------------------------

    async def _listen(self) -> Listening:
        self._shutdown.clear()
        return await asyncio.start_server(self._connection, self.host, self._port)

    async def _stop_connections(self) -> None:
        self._shutdown.set()
        for writer in list(self._writers):
            writer.close()
        handlers = list(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    def heal(self) -> None:
        """Remove every fault (knobs otherwise kept)."""
        self.knobs = replace(self.knobs, faults=())

    def generate_requests(self) -> list[RestRequest]:
        return [r for r in self.requests if r.model]

    # ---- HTTP plumbing -------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    break
                keep = await self._serve(conn, writer, request, body)
                if not keep or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            if not self._shutdown.is_set():
                raise
            # Cancelled by close() (which owns these tasks): end quietly; asyncio's
            # stream callback would otherwise report the cancellation as an error.
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader) -> tuple[h11.Request | None,
                                                                                                 bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.ProtocolError("request body too large")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None, b""

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, data: bytes | None) -> None:
        if data:
            writer.write(data)
            await writer.drain()

    async def _send_json(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int, obj: Any,
                         headers: Sequence[tuple[str, str]] = ()) -> None:
        payload = (json.dumps(obj, indent=2) + "\n").encode()
        head = [("content-type", "application/json; charset=UTF-8"), ("content-length", str(len(payload))),
                *headers]
        await self._write(writer, conn.send(h11.Response(status_code=status, headers=head)))
        await self._write(writer, conn.send(h11.Data(data=payload)))
        await self._write(writer, conn.send(h11.EndOfMessage()))

    # ---- one request ---------------------------------------------------------------------

    async def _serve(self, conn: h11.Connection, writer: asyncio.StreamWriter, request: h11.Request,
                     raw: bytes) -> bool:
        """Answer one request; False when the connection must close."""
        self.request_count += 1
        target = request.target.decode("latin-1")
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        key = headers.get("x-goog-api-key", "") or (query.get("key") or [""])[0]
        shown_headers = {k: ("<present>" if k == "x-goog-api-key" else v) for k, v in headers.items()}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw[:200].decode("latin-1")
        record = RestRequest(
            number=self.request_count, method=request.method.decode(), path=parts.path,
            query={k: (["<present>"] if k == "key" else v) for k, v in query.items()},
            headers=shown_headers, body=body, arrived=time.monotonic(),
            key_in_header=bool(headers.get("x-goog-api-key")), key_in_query="key" in query,
        )
        self.requests.append(record)
        knobs = self.knobs
        match = _PATH.match(parts.path)
        if match is not None:
            record.model, record.stream = match.group(2), match.group(3) == "streamGenerateContent"
        try:
            if knobs.latency:
                await asyncio.sleep(knobs.latency)
            check_key(key, self.knobs.api_keys)
            listing = _LIST_PATH.match(parts.path)
            if listing and record.method == "GET":
                record.status = 200
                await self._send_json(conn, writer, 200, models_page(query))
                return True
            if parts.path == TOKENS_PATH and record.method == "POST":
                record.status = 200
                await self._send_json(conn, writer, 200, self._mint(body))
                return True
            if match is None or record.method != "POST":
                raise GoogleError(404, "NOT_FOUND", f"Method not found: {record.method} {parts.path}")
            version, model, method = match.groups()
            if record.stream and (query.get("alt") or [""])[0] != "sse":
                # We only emulate the SSE form (LIVE_API.md §2); the JSON-array form exists too.
                raise GoogleError(400, "INVALID_ARGUMENT",
                                  "this emulator serves streamGenerateContent with alt=sse only")
            if is_live_only(model):
                raise GoogleError(404, "NOT_FOUND", f"models/{model} is not found for API version {version}, or is "
                                  f"not supported for {method}. Call ListModels to see the list of available models "
                                  "and their supported methods.")
            fault = self._take_fault()
            record.fault = fault
            log.info("emulator: REST request %d, %s %s%s", record.number, model, method,
                     f": injecting fault {fault}" if fault else "")
            images, text, resolution = validate_generate(body)
            return await self._answer(conn, writer, record, fault, images, text, resolution)
        except GoogleError as answer:
            record.status = answer.status
            await self._send_json(conn, writer, answer.status, answer.body, answer.headers)
            return True

    def _mint(self, body: Any) -> dict[str, Any]:
        """``POST /v1alpha/auth_tokens``: a new ephemeral token, or Google's 400 for a bad request."""
        if body is not None and not isinstance(body, dict):
            raise GoogleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        try:
            return self.tokens.mint(body)
        except TokenRefused as refused:
            raise GoogleError(400, "INVALID_ARGUMENT", str(refused)) from None

    def _take_fault(self) -> str:
        for fault in self.knobs.faults:
            if self.request_count <= fault.after:
                continue
            used = self._applied.get(id(fault), 0)
            if fault.count and used >= fault.count:
                continue
            self._applied[id(fault)] = used + 1
            return fault.kind
        return ""

    # ---- answers -------------------------------------------------------------------------

    async def _answer(self, conn: h11.Connection, writer: asyncio.StreamWriter, record: RestRequest, fault: str,
                      images: list[bytes], prompt: str, resolution: str) -> bool:
        model = record.model
        if fault == "429":
            raise quota_error(model, self.knobs, per_day=False)
        if fault == "perday":
            raise quota_error(model, self.knobs, per_day=True)
        if fault in ("500", "503"):
            raise unavailable_error(self.knobs, int(fault))
        if fault == "badkey":
            raise bad_key()
        if fault == "forbidden":
            raise GoogleError(403, "PERMISSION_DENIED", "Permission denied: Consumer has been suspended.")
        if fault == "reset":
            record.status = -1
            return False
        if fault == "stall" and not record.stream:
            record.status = -1
            await self._shutdown.wait()  # until the emulator closes (the client gives up first)
            return False
        # Per image by resolution and 768 px tiles, text ~ chars/4 (testing/live_usage.py).
        image_tokens = sum(jpeg_tokens(image, resolution or "MEDIA_RESOLUTION_MEDIUM") for image in images)
        prompt_tokens = text_tokens(prompt) + image_tokens
        usage: dict[str, Any] = {"promptTokenCount": prompt_tokens, "promptTokensDetails": [
            {"modality": m, "tokenCount": t} for m, t in (("TEXT", text_tokens(prompt)), ("IMAGE", image_tokens)) if t]}
        if fault == "blocked":
            record.status = 200
            body: dict[str, Any] = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
                "usageMetadata": {**usage, "totalTokenCount": prompt_tokens}, "modelVersion": model}
            await self._respond_chunks(conn, writer, record, [body])
            return True
        if fault == "safety":
            record.status = 200
            body = {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]}],
                "usageMetadata": {**usage, "totalTokenCount": prompt_tokens}, "modelVersion": model}
            await self._respond_chunks(conn, writer, record, [body])
            return True
        structured = _condition_ids(record.body)
        if structured is None:
            text = await asyncio.to_thread(_describe, images)
        else:  # responseSchema: JSON with per-condition verdicts (watch conditions)
            text = await asyncio.to_thread(_structured, images, record.body, structured, self.knobs.verify)
        words = text.split()
        n = self.knobs.words_per_chunk
        pieces = [" ".join(words[i:i + n]) + (" " if i + n < len(words) else "") for i in range(0, len(words), n)]
        pieces = pieces or [""]
        response_tokens = max(1, int(len(words) * 1.3))
        chunks: list[dict[str, Any]] = []
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
            if last:
                candidate["finishReason"] = "STOP"
            chunk_usage = dict(usage, candidatesTokenCount=response_tokens if last else
                               max(1, int(len(" ".join(pieces[:index + 1]).split()) * 1.3)))
            chunk_usage["totalTokenCount"] = prompt_tokens + chunk_usage["candidatesTokenCount"]
            chunks.append({"candidates": [candidate], "usageMetadata": chunk_usage, "modelVersion": model,
                           "responseId": f"emu-{record.number}"})
        record.status = 200
        if not record.stream:
            whole = dict(chunks[-1])
            whole["candidates"] = [dict(chunks[-1]["candidates"][0], content={"parts": [{"text": text}],
                                                                              "role": "model"})]
            await self._send_json(conn, writer, 200, whole)
            return True
        if fault == "midstream":
            error = unavailable_error(self.knobs).body
            await self._respond_chunks(conn, writer, record, [chunks[0], error])
            return True
        await self._respond_chunks(conn, writer, record, chunks, stall_after_first=fault == "stall")
        return True

    async def _respond_chunks(self, conn: h11.Connection, writer: asyncio.StreamWriter, record: RestRequest,
                              chunks: list[dict[str, Any]], *, stall_after_first: bool = False) -> None:
        if not record.stream:
            await self._send_json(conn, writer, 200, chunks[-1])
            return
        head = [("content-type", "text/event-stream"), ("cache-control", "no-cache"),
                ("x-content-type-options", "nosniff")]
        await self._write(writer, conn.send(h11.Response(status_code=200, headers=head)))
        for index, chunk in enumerate(chunks):
            if index and self.knobs.chunk_delay:
                await asyncio.sleep(self.knobs.chunk_delay)
            # Google frames each event as "data: <compact json>" and CRLF CRLF.
            event = f"data: {json.dumps(chunk, separators=(',', ':'))}\r\n\r\n".encode()
            await self._write(writer, conn.send(h11.Data(data=event)))
            if stall_after_first:
                record.status = -1
                await self._shutdown.wait()
                return
        await self._write(writer, conn.send(h11.EndOfMessage()))


def models_page(query: dict[str, list[str]]) -> dict[str, Any]:
    """One page of ``GET /{v}/models``: the Live catalogue and the REST models (``pageSize``/``pageToken``)."""
    entries = [{"name": f"models/{m.model_id}", "displayName": m.display_name,
                "supportedGenerationMethods": ["bidiGenerateContent"], "inputTokenLimit": m.input_token_limit,
                "outputTokenLimit": m.output_token_limit} for m in LIVE_MODELS]
    entries += [{"name": f"models/{m}", "displayName": m,
                 "supportedGenerationMethods": ["generateContent", "countTokens"],
                 "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536} for m in REST_MODELS]
    size = int((query.get("pageSize") or ["50"])[0] or 50)
    start = int((query.get("pageToken") or ["0"])[0] or 0)
    page: dict[str, Any] = {"models": entries[start:start + size]}
    if start + size < len(entries):
        page["nextPageToken"] = str(start + size)
    return page


def quota_error(model: str, knobs: RestKnobs, *, per_day: bool) -> GoogleError:
    """429 ``RESOURCE_EXHAUSTED`` as Google sends it: QuotaFailure (a ``PerDay`` quota id when
    ``per_day``), Help, and RetryInfo with ``knobs.retry_delay``."""
    quota_id = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if per_day
                else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    delay = knobs.retry_delay
    headers = [("retry-after", str(max(1, round(delay))))] if knobs.retry_after_header else []
    return GoogleError(429, "RESOURCE_EXHAUSTED", QUOTA_TEXT, [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": metric, "quotaId": quota_id,
             "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "250" if per_day else "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": proto_duration(delay)},
    ], headers)

def unavailable_error(knobs: RestKnobs, status: int = 503) -> GoogleError:
    """500 ``INTERNAL`` or 503 ``UNAVAILABLE`` (with ``Retry-After`` when the knobs say so)."""
    headers = [("retry-after", str(max(1, round(knobs.retry_delay))))] if knobs.retry_after_header else []
    if status == 500:
        return GoogleError(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                       "https://developers.generativeai.google/guide/troubleshooting", headers=headers)
    return GoogleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", headers=headers)


def _describe(images: Sequence[bytes]) -> str:
    """The offline analyzer's words about the pictures (no prompt: the emulator plays a model)."""
    from ..backends.local import describe_jpegs

    text, _ = describe_jpegs(list(images))
    return text


def _condition_ids(body: Any) -> tuple[list[str], bool] | None:
    """The condition ids a ``responseSchema`` asks verdicts for (``conditions`` keyed by id,
    conditions/rest.py) and whether it asks for commentary; None: no structured output asked."""
    config = body.get("generationConfig") if isinstance(body, dict) else None
    schema = config.get("responseSchema") if isinstance(config, dict) else None
    if not isinstance(schema, dict) or not isinstance(config, dict) or config.get(
            "responseMimeType") != "application/json":
        return None
    properties = schema.get("properties") or {}
    conditions = properties.get("conditions") if isinstance(properties, dict) else None
    ids = list((conditions.get("properties") or {}) if isinstance(conditions, dict) else {})
    return ids, "commentary" in properties


def _structured(images: Sequence[bytes], body: dict[str, Any], asked: tuple[list[str], bool], mode: str) -> str:
    """The JSON answer: commentary by the analyzer, per condition a verdict by the offline
    signals of the pictures (``verify=agree/reject``: met / not met, whatever they show)."""
    from ..backends.prompts import parse_condition_lines
    from .live_emulator import instruction_text
    from .signal_judge import SignalJudge

    ids, with_commentary = asked
    texts = [instruction_text(body.get("systemInstruction"))]
    texts += [instruction_text(c) for c in body.get("contents") or () if isinstance(c, dict)]
    named = parse_condition_lines("\n".join(texts))
    judged = SignalJudge().judge(images, {cid: named[cid] for cid in ids if cid in named})
    verdicts: dict[str, Any] = {}
    for cid in ids:
        verdict = judged.get(cid)
        if mode == "agree":
            entry = {"met": True, "confidence": 0.9, "evidence": verdict.evidence if verdict and verdict.met
                     else "it is there (emulator: verify=agree)"}
        elif mode == "reject":
            entry = {"met": False, "confidence": 0.9,
                     "evidence": "not seen in these pictures (emulator: verify=reject)"}
        elif verdict is None:
            entry = {"met": False, "confidence": 0.0, "evidence": "cannot judge this from the pictures"}
        else:
            entry = {"met": verdict.met, "confidence": round(verdict.confidence, 3),
                     "evidence": verdict.evidence or "not seen"}
        verdicts[cid] = entry
    answer: dict[str, Any] = {"conditions": verdicts}
    if with_commentary:
        answer = {"commentary": _describe(images), **answer}
    return json.dumps(answer)


async def serve_rest_emulator(host: str, port: int, knobs: RestKnobs) -> None:
    """Run the REST emulator on ``host:port`` until cancelled."""
    async with RestEmulator(knobs, host=host, port=port) as emulator:
        log.info("Gemini REST emulator listening on %s", emulator.url)
        await asyncio.Event().wait()
