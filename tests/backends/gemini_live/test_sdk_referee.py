"""The official SDK (google-genai) as referee: it talks to our emulator with its own defaults, and
every message our client sends validates against its types. API versions and ephemeral tokens."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import warnings
from typing import Any

import httpx
import pytest
from helpers.frames import sampled_frame
from helpers.live import (
    API_KEY,
    LiveEvents,
    fast_settings,
    loopback_tls,
    scene,
    self_signed_pem,
    session_settings,
    validate_client_json,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from vision_stream.backends.gemini_api import API_VERSION, API_VERSIONS
from vision_stream.backends.gemini_live import GeminiLiveBackend, LiveSettings
from vision_stream.backends.gemini_rest import RestSettings, list_models
from vision_stream.errors import ServiceError, UsageError
from vision_stream.media.types import SampledFrame
from vision_stream.testing import EmulatorKnobs, LiveEmulator
from vision_stream.testing.auth_tokens import AuthTokens
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestKnobs

genai = pytest.importorskip("google.genai")
types = pytest.importorskip("google.genai.types")

pytestmark = pytest.mark.timeout(60)

GEMINI_WS = "/ws/google.ai.generativelanguage.{}.GenerativeService.BidiGenerateContent"
REPORT_EVENT = {"name": "report_event", "description": "report a notable event",
                "parameters": {"type": "OBJECT", "properties": {"label": {"type": "STRING"}}}}


def _frames() -> list[SampledFrame]:
    """Three dark red frames, then three bright ones: a scene cut the emulator reports with report_event."""
    return [sampled_frame(scene("red" if i < 3 else "bright"), float(i)) for i in range(6)]


def _sdk_client(live_url: str, client_tls: Any, **http_options: Any) -> Any:
    # The SDK turns any base URL into wss:// (google/genai/_api_client.py _websocket_base_url);
    # async_client_args["ssl"] is its own knob for the TLS context of the Live socket.
    return genai.Client(api_key=http_options.pop("api_key", API_KEY),
                        http_options={"base_url": live_url.replace("wss://", "https://"),
                                      "async_client_args": {"ssl": client_tls}, **http_options})


async def _sdk_turn(session: Any, prompt: str) -> list[Any]:
    """Send the frames and ``prompt``; read the turn, answering every tool call the SDK's way."""
    for frame in _frames():
        await session.send_realtime_input(video=types.Blob(data=frame.jpeg, mime_type="image/jpeg"))
    await session.send_realtime_input(text=prompt)
    messages: list[Any] = []
    async with asyncio.timeout(15):
        async for message in session.receive():
            messages.append(message)
            if message.tool_call:
                await session.send_tool_response(function_responses=[
                    types.FunctionResponse(id=call.id, name=call.name, response={"result": "ok"})
                    for call in message.tool_call.function_calls])
    return messages


async def test_official_sdk_with_its_defaults_completes_a_session(live_emulator, monkeypatch) -> None:
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)  # the SDK's own default, untouched
    server_tls, client_tls = loopback_tls()
    config = types.LiveConnectConfig(
        response_modalities=["AUDIO"], output_audio_transcription={}, session_resumption={},
        context_window_compression={"sliding_window": {}}, tools=[{"function_declarations": [REPORT_EVENT]}])
    async with live_emulator(tls=server_tls) as emu:
        client = _sdk_client(emu.url, client_tls)
        async with client.aio.live.connect(model="gemini-3.8-live", config=config) as session:
            messages = await _sdk_turn(session, "What changed?")
        handles = [m.session_resumption_update.new_handle for m in messages
                   if m.session_resumption_update and m.session_resumption_update.new_handle]
        resumed = types.LiveConnectConfig(**{**config.model_dump(exclude_none=True),
                                             "session_resumption": {"handle": handles[-1]}})
        async with client.aio.live.connect(model="gemini-3.8-live", config=resumed) as session:
            await session.send_realtime_input(text="And now?")
            async with asyncio.timeout(15):
                resumed_messages = [m async for m in session.receive()]
        first, second = emu.connections[:2]
        answered = [r["id"] for m in emu.client_messages("toolResponse")
                    for r in m["toolResponse"]["functionResponses"]]

    assert first.path == GEMINI_WS.format("v1") == second.path  # the SDK's default version is v1
    assert API_VERSION == "v1"  # ... and ours follows it
    assert first.setup_complete and second.handle == handles[-1] and second.session_id == first.session_id
    calls = [c for m in messages if m.tool_call for c in m.tool_call.function_calls]
    assert calls and calls[0].name == "report_event" and answered == [c.id for c in calls]
    said = "".join(m.server_content.output_transcription.text for m in messages
                   if m.server_content and m.server_content.output_transcription)
    assert "scene cut" in said
    assert messages[-1].server_content.turn_complete and resumed_messages[-1].server_content.turn_complete


async def test_every_message_our_client_sends_validates_against_the_sdk(live_emulator) -> None:
    async with live_emulator() as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url)).open(session_settings())
        events = LiveEvents(session)
        for frame in _frames():
            await session.send_frame(frame)
            await asyncio.sleep(0.11)
        await session.prompt("", reason="scene", media_time=5.0)
        await events.until(lambda: len(events.finals()) >= 1)
        await session.prompt("What colour is it?", reason="client")
        await events.until(lambda: len(events.finals()) >= 2)
        await session.close()
        await events.finish()
        sent = [m.text for m in emu.received]
    for text in sent:
        validate_client_json(text)  # types.LiveClientMessage, extra fields forbidden
    messages = [json.loads(t) for t in sent]
    kinds = {next(iter(m)) for m in messages}
    realtime = {next(iter(m["realtimeInput"])) for m in messages if "realtimeInput" in m}
    assert {"setup", "realtimeInput", "toolResponse"} <= kinds and {"video", "text"} <= realtime


@pytest.mark.parametrize("version", API_VERSIONS)
async def test_our_client_on_every_version(live_emulator, version: str) -> None:
    async with live_emulator() as emu:
        session = await GeminiLiveBackend(fast_settings(emu.url, api_version=version)).open(session_settings())
        events = LiveEvents(session)
        await session.send_frame(sampled_frame(scene("green"), 0.0))
        await session.prompt("What is it?", reason="client")
        await events.until(lambda: len(events.finals()) >= 1)
        await session.close()
        await events.finish()
        path = emu.connections[0].path
    assert path == GEMINI_WS.format(version)


async def test_unknown_version_is_refused_naming_the_setting(live_emulator) -> None:
    with pytest.raises(UsageError, match=r"api_version \(--api-version\) must be one of v1, v1beta, v1alpha"):
        LiveSettings(api_key=API_KEY, api_version="v2")
    with pytest.raises(UsageError, match="api_version"):
        RestSettings(api_key=API_KEY, api_version="v1beta1")
    async with live_emulator() as emu:
        # A full endpoint URL bypasses the setting: Google's 404 page, and our error names the setting.
        async with httpx.AsyncClient() as http:
            page = await http.get(emu.url.replace("ws://", "http://") + GEMINI_WS.format("v2"))
        settings = fast_settings(emu.url + GEMINI_WS.format("v2"))
        with pytest.raises(ServiceError) as refused:
            await GeminiLiveBackend(settings).open(session_settings())
    assert page.status_code == 404 and page.headers["content-type"] == "text/html; charset=UTF-8"
    assert "Error 404 (Not Found)!!1" in page.text and "v2.GenerativeService" in page.text
    assert refused.value.http_status == 404 and not refused.value.retryable
    assert "api_version" in str(refused.value) and API_KEY not in str(refused.value)


async def test_rest_and_the_models_list_use_the_version_setting(rest_emulator: RestEmulator) -> None:
    from helpers.rest import API_KEY as REST_KEY

    for version in API_VERSIONS:
        models = await list_models(RestSettings(base_url=rest_emulator.url, api_key=REST_KEY, api_version=version))
        assert any(m.live for m in models)
    assert [r.path for r in rest_emulator.requests] == [f"/{v}/models" for v in API_VERSIONS]


async def _mint(rest: RestEmulator, **body: Any) -> str:
    async with httpx.AsyncClient(headers={"x-goog-api-key": API_KEY}) as http:
        answer = await http.post(f"{rest.url}/v1alpha/auth_tokens", json=body)
    assert answer.status_code == 200, answer.text
    token = types.AuthToken.model_validate(answer.json())  # the SDK's own type for the answer
    assert token.name and token.name.startswith("auth_tokens/") and token.uses == body.get("uses", 1)
    return token.name


async def _raw_setup(url: str, headers: dict[str, str] | None = None) -> tuple[bool, int | None, str]:
    """(setupComplete seen, close code, close reason) of one raw connection sending a minimal setup."""
    async with connect(url, additional_headers=headers or {}, proxy=None) as ws:
        await ws.send(json.dumps({"setup": {"model": "models/gemini-3.8-live"}}))
        try:
            async with asyncio.timeout(2):
                first = json.loads(await ws.recv())
        except (TimeoutError, ConnectionClosed):
            first = {}
        rcvd = ws.protocol.close_rcvd
    return "setupComplete" in first, (rcvd.code if rcvd else None), (rcvd.reason if rcvd else "")


async def test_ephemeral_tokens_header_and_query_on_the_constrained_method() -> None:
    tokens = AuthTokens()
    async with RestEmulator(RestKnobs(api_keys=(API_KEY,)), tokens=tokens) as rest, \
            LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,)), tokens=tokens) as live:
        # Our client, token in the Authorization header (the SDKs' way).
        token = await _mint(rest, uses=1)
        settings = fast_settings(live.url, api_key="", ephemeral_token=token, api_version="v1alpha")
        assert token not in repr(settings) and token in settings.secrets()
        session = await GeminiLiveBackend(settings).open(session_settings())
        events = LiveEvents(session)
        await session.send_frame(sampled_frame(scene("green"), 0.0))
        await session.prompt("What is it?", reason="client")
        await events.until(lambda: len(events.finals()) >= 1)
        await session.close()
        await events.finish()
        # The one use is spent: a new session with it is refused.
        spent = await _raw_setup(live.url + GEMINI_WS.format("v1alpha") + "Constrained",
                                 {"Authorization": f"Token {token}"})
        # A browser's way: ?access_token= on the Constrained method works...
        second = await _mint(rest, uses=2)
        constrained = await _raw_setup(f"{live.url}{GEMINI_WS.format('v1alpha')}Constrained?access_token={second}")
        # ... and on the plain method it is no credential at all.
        plain = await _raw_setup(f"{live.url}{GEMINI_WS.format('v1alpha')}?access_token={second}")
        with pytest.raises(InvalidStatus):
            await _raw_setup(f"{live.url}/ws/google.ai.generativelanguage.v9.GenerativeService.BidiGenerateContent")
        paths = [c.path.split("?")[0] for c in live.connections]
    assert paths[0] == GEMINI_WS.format("v1alpha") + "Constrained"
    assert spent == (False, 1008, "The auth token has no uses left.")
    assert constrained == (True, None, "")
    assert plain[:2] == (False, 1008) and plain[2].startswith("Method doesn't allow unregistered callers")
    with pytest.raises(UsageError, match="v1alpha"):
        fast_settings("ws://127.0.0.1:1", ephemeral_token="auth_tokens/x")  # default version v1


async def test_official_sdk_mints_and_uses_an_ephemeral_token(monkeypatch) -> None:
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    server_tls, client_tls = loopback_tls()
    tokens = AuthTokens()
    async with RestEmulator(RestKnobs(api_keys=(API_KEY,)), tokens=tokens) as rest, \
            LiveEmulator(EmulatorKnobs(api_keys=(API_KEY,)), tokens=tokens, tls=server_tls) as live:
        minter = genai.Client(api_key=API_KEY, http_options={"base_url": rest.url, "api_version": "v1alpha"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "ephemeral token support is experimental"
            token = await minter.aio.auth_tokens.create(config={"uses": 1})
            client = _sdk_client(live.url, client_tls, api_key=token.name, api_version="v1alpha")
            async with client.aio.live.connect(model="gemini-3.8-live", config={"response_modalities": ["AUDIO"]}):
                pass
        path = live.connections[0].path
        setup_complete = live.connections[0].setup_complete
        minted = rest.requests[-1]
    assert token.name.startswith("auth_tokens/") and minted.path == "/v1alpha/auth_tokens"
    assert path == GEMINI_WS.format("v1alpha") + "Constrained" and setup_complete


def test_api_version_flag_reaches_live_rest_and_models() -> None:
    from vision_stream.backends.factory import make_live_backend, make_rest_backend
    from vision_stream.cli.args import backend_options_from
    from vision_stream.cli.parser import build_parser

    parser = build_parser()
    env = {"GEMINI_API_KEY": API_KEY}
    for argv in (["serve"], ["replay", "clip.mp4"], ["snapshot", "x.jpg"], ["models"]):
        options = backend_options_from(parser.parse_args([*argv, "--api-version", "v1alpha"]), env)
        assert options.api_version == "v1alpha", argv
        assert backend_options_from(parser.parse_args(argv), env).api_version == API_VERSION
    live = make_live_backend(options)
    assert isinstance(live, GeminiLiveBackend) and live.settings.api_version == "v1alpha"
    assert make_rest_backend(options).settings.api_version == "v1alpha"
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "--api-version", "v2"])  # argparse: "invalid choice: 'v2'"


async def test_models_command_lists_on_the_chosen_version(rest_emulator: RestEmulator) -> None:
    import os
    import sys

    from helpers.rest import API_KEY as REST_KEY
    from helpers.timing import scaled

    env = dict(os.environ, GEMINI_API_KEY=REST_KEY)
    env.pop("GOOGLE_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vision_stream.cli", "models", "--rest-url", rest_emulator.url, "--api-version",
        "v1beta", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), scaled(60))
    assert proc.returncode == 0, err.decode()
    assert "live  gemini-3.8-live" in out.decode()
    assert {r.path for r in rest_emulator.requests} == {"/v1beta/models"}


async def test_official_sdk_against_the_emulate_command_with_tls(tmp_path, monkeypatch) -> None:
    """What a user does: `vision-stream emulate --tls-cert --tls-key`, then the SDK with its defaults
    (it always connects with TLS, so a plain ws:// emulator cannot serve it)."""
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    cert_pem, key_pem = self_signed_pem()
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    emulate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vision_stream.cli", "emulate", "--port", "0",
        "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert emulate.stdout is not None
        first = (await asyncio.wait_for(emulate.stdout.readline(), 20)).decode()
        live_url = first.split()[4]  # "Gemini Live emulator on wss://127.0.0.1:PORT ..."
        assert live_url.startswith("wss://127.0.0.1:"), first
        client = _sdk_client(live_url, ssl.create_default_context(cadata=cert_pem.decode()))
        config = types.LiveConnectConfig(response_modalities=["AUDIO"], output_audio_transcription={})
        async with client.aio.live.connect(model="gemini-3.8-live", config=config) as session:
            await session.send_realtime_input(text="Hello?")
            async with asyncio.timeout(15):
                messages = [m async for m in session.receive()]
        assert messages[-1].server_content.turn_complete
    finally:
        emulate.terminate()
        await emulate.wait()


async def test_emulate_refuses_half_a_tls_pair(tmp_path) -> None:
    cert_pem, _key = self_signed_pem()
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vision_stream.cli", "emulate", "--port", "0", "--tls-cert", str(tmp_path / "cert.pem"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2 and err.decode().strip().count("\n") == 0
    assert "--tls-cert and --tls-key go together" in err.decode()
