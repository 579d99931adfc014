"""Capabilities table, settings (redaction, endpoints), retry classification, models listing."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from vision_stream.backends.gemini_live import LiveSettings, ReconnectPolicy, VertexAuth, capabilities_for
from vision_stream.backends.gemini_live.commentary import setup_params
from vision_stream.backends.gemini_live.endings import Ending, is_transient
from vision_stream.backends.gemini_live.models import SAFE_DEFAULTS, check_session_options
from vision_stream.backends.gemini_rest.catalog import list_models, parse_models_page
from vision_stream.backends.gemini_rest.messages import build_request
from vision_stream.backends.gemini_rest.settings import RestSettings
from vision_stream.cli.args import model_settings_from, session_settings_from
from vision_stream.cli.parser import build_parser
from vision_stream.config import FunctionSpec, SessionSettings
from vision_stream.errors import InvalidInputError, ServiceError, UsageError
from vision_stream.retry import Backoff


def test_capabilities_by_family_and_safe_defaults() -> None:
    assert capabilities_for("gemini-3.8-live").proactive_audio == "always"
    assert capabilities_for("models/gemini-3.1-flash-live-preview").client_content_mid_session is False
    dated = capabilities_for("gemini-2.5-flash-native-audio-preview-12-2025")
    assert dated.family == "gemini-2.5-flash-native-audio" and dated.thinking == "budget"
    assert capabilities_for("gemini-live-2.5-flash-preview").retired
    unknown = capabilities_for("gemini-9-live-experimental")
    assert unknown is SAFE_DEFAULTS and unknown.response_modality == "AUDIO"
    assert unknown.turn_coverage == "TURN_INCLUDES_ALL_INPUT"


def test_setup_for_commentary_follows_the_model() -> None:
    session = SessionSettings(session_id="s", persona="a sports commentator", language="de-DE",
                              functions=(FunctionSpec(name="open_door", parameters={"type": "object"}),))
    for model in ("gemini-3.8-live", "gemini-3.1-flash-live-preview", "gemini-2.5-flash-native-audio-latest"):
        caps = capabilities_for(model)
        params = setup_params(LiveSettings(model=model), session, caps)
        assert params.response_modality == "AUDIO" and params.output_transcription and params.compression
        assert params.media_resolution == "MEDIA_RESOLUTION_LOW"
        assert "sports commentator" in params.system_instruction and "de-DE" in params.system_instruction
        names = [d["name"] for d in params.function_declarations]
        assert names == ["report_event", "open_door"]
        assert params.proactivity is None
        if model == "gemini-3.8-live":
            assert params.thinking_config is None  # 3.8 has no thinkingLevel
        assert params.realtime_input_config == {"activityHandling": "NO_INTERRUPTION",
                                                "turnCoverage": "TURN_INCLUDES_ALL_INPUT"}


def test_settings_redact_the_key_and_build_endpoints() -> None:
    settings = LiveSettings(api_key="AIza-very-secret", base_url="http://127.0.0.1:8765", media_resolution="medium")
    assert "AIza-very-secret" not in repr(settings)
    assert settings.media_resolution == "MEDIA_RESOLUTION_MEDIUM"
    assert settings.endpoint == (
        "ws://127.0.0.1:8765/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"
    )
    assert settings.rest_base == "http://127.0.0.1:8765" and settings.is_loopback
    assert settings.headers() == {"x-goog-api-key": "AIza-very-secret"}
    default = LiveSettings(api_key="k")
    assert default.endpoint.startswith("wss://generativelanguage.googleapis.com/ws/")
    assert default.model_resource == "models/gemini-3.8-live"
    vertex = LiveSettings(vertex=VertexAuth(project="p1", location="europe-west4", access_token="ya29.tok"))
    assert vertex.endpoint == ("wss://europe-west4-aiplatform.googleapis.com/ws/"
                               "google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent")
    assert vertex.model_resource == "projects/p1/locations/europe-west4/publishers/google/models/gemini-3.8-live"
    assert vertex.headers() == {"Authorization": "Bearer ya29.tok"} and "ya29.tok" not in repr(vertex)
    with pytest.raises(UsageError):
        LiveSettings(media_resolution="ultra")
    with pytest.raises(UsageError):
        LiveSettings(base_url="ftp://x")


def test_close_classification() -> None:
    assert not is_transient(Ending(1007, "API key not valid. Please pass a valid API key."))
    assert not is_transient(Ending(1008, "models/x is not found"))
    assert not is_transient(Ending(1000, "", before_setup=True))  # accepted, then closed at once
    assert not is_transient(Ending(404, "Not Found", http=True, before_setup=True))
    for ending in (Ending(1011, "Internal error encountered."), Ending(1006, "connection lost"),
                   Ending(1000, ""), Ending(503, "Service Unavailable", http=True), Ending(0, "refused")):
        assert is_transient(ending), ending
    assert Ending(1011, "Internal error encountered.").label == "1011 Internal error encountered."


def test_backoff_is_jittered_exponential_bounded_and_resets() -> None:
    policy = ReconnectPolicy(max_attempts=5, base_backoff=1.0, max_backoff=4.0, jitter=0.5, quota_backoff=60)
    backoff = Backoff(policy.retry, rng=random.Random(1))
    delays = [backoff.fail(at_least=policy.quota_wait(Ending(1011, "x"))) for _ in range(4)]
    for delay, nominal in zip(delays, (1, 2, 4, 4), strict=True):
        assert delay is not None and nominal * 0.5 <= delay <= nominal
    assert not backoff.exhausted
    quota = Ending(1011, "Resource has been exhausted (e.g. check quota).")
    assert backoff.fail(at_least=policy.quota_wait(quota)) is None  # the 5th failure: exhausted
    assert policy.quota_wait(quota) == 60
    assert backoff.exhausted
    backoff.reset()
    assert backoff.failures == 0


MODELS_PAGE_1 = {
    "models": [
        {"name": "models/gemini-3.8-live", "displayName": "Gemini 3.8 Live", "inputTokenLimit": 131072,
         "outputTokenLimit": 8192, "supportedGenerationMethods": ["bidiGenerateContent"]},
        {"name": "models/gemini-3.6-flash", "displayName": "Gemini 3.6 Flash", "inputTokenLimit": 1048576,
         "outputTokenLimit": 65536,
         "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent",
                                        "batchGenerateContent"]},
    ],
    "nextPageToken": "page-2",
}
MODELS_PAGE_2 = {"models": [{"name": "models/gemini-2.5-flash-native-audio-latest",
                             "supportedGenerationMethods": ["countTokens", "bidiGenerateContent"]}]}


async def test_list_models_parses_pages_and_sends_the_key_in_a_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = MODELS_PAGE_2 if request.url.params.get("pageToken") == "page-2" else MODELS_PAGE_1
        return httpx.Response(200, json=page)

    settings = RestSettings(api_key="AIza-secret", base_url=LiveSettings(base_url="ws://127.0.0.1:1").rest_base)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        models = await list_models(settings, client=client)
    assert [m.model_id for m in models if m.live] == ["gemini-3.8-live", "gemini-2.5-flash-native-audio-latest"]
    assert not models[1].live and models[1].input_token_limit == 1048576
    assert str(seen[0].url).startswith("http://127.0.0.1:1/v1/models?")
    assert seen[0].headers["x-goog-api-key"] == "AIza-secret" and "AIza" not in str(seen[0].url)
    assert parse_models_page({}) == ([], "")


async def test_list_models_errors_carry_googles_message_not_the_key() -> None:
    body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                      "status": "INVALID_ARGUMENT"}}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=json.dumps(body))

    settings = RestSettings(api_key="AIza-secret", base_url=LiveSettings(base_url="ws://127.0.0.1:1").rest_base)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ServiceError, match="API key not valid") as info:
            await list_models(settings, client=client)
    assert info.value.status == 400 and not info.value.retryable and "AIza-secret" not in str(info.value)


def test_capability_table_holds_each_current_models_facts() -> None:
    live38, thinking = capabilities_for("gemini-3.8-live"), capabilities_for("gemini-3.8-live-extended-thinking")
    legacy, translate = capabilities_for("gemini-3.1-flash-live-preview"), capabilities_for(
        "gemini-3.5-live-translate-preview")
    native = capabilities_for("gemini-2.5-flash-native-audio-preview-12-2025")
    vertex = capabilities_for("gemini-live-2.5-flash-native-audio")
    assert live38.non_blocking_tools and native.non_blocking_tools
    assert not legacy.non_blocking_tools and not vertex.non_blocking_tools
    assert thinking.family == "gemini-3.8-live-extended-thinking" and thinking.requires_thinking_config
    assert live38.server_turn_coverage == "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO"
    assert translate.translation_only and not translate.function_calling and not translate.builtin_tools
    for caps in (live38, thinking, legacy, native, vertex):
        assert "google_search" in caps.builtin_tools and "code_execution" not in caps.builtin_tools
        assert "Kore" in caps.voices and "de-DE" in caps.languages and "en-US" in caps.languages


def test_session_options_are_checked_against_the_model() -> None:
    caps = capabilities_for("gemini-3.8-live")
    options = check_session_options("models/gemini-3.8-live", caps, voice="puck", language="EN-gb",
                                    tools=["google_search", "google_search"])
    assert (options.voice, options.language, options.tools) == ("Puck", "en-GB", ({"googleSearch": {}},))
    for kwargs, named in (({"voice": "Nobody"}, "'Nobody'"), ({"language": "xx-YY"}, "'xx-YY'"),
                          ({"tools": ["code_execution"]}, "'code_execution'"), ({"tools": ["ftp"]}, "'ftp'")):
        given = {"voice": "", "language": "", "tools": (), **kwargs}
        with pytest.raises(InvalidInputError) as refused:
            check_session_options("gemini-3.8-live", caps, **given)  # type: ignore[arg-type]
        assert named in refused.value.message and ("gemini-3.8-live" in refused.value.message or "ftp" in named)
    with pytest.raises(InvalidInputError, match="takes no function declarations"):
        check_session_options("gemini-3.5-live-translate-preview", capabilities_for("gemini-3.5-live-translate"),
                              voice="", language="", tools=(), functions=1)
    # An unknown model: voices and languages pass as given (the server decides).
    assert check_session_options("gemini-9-live", SAFE_DEFAULTS, voice="Nova", language="xx", tools=()).voice == "Nova"


def test_declarations_carry_behavior_only_where_the_model_takes_non_blocking_calls() -> None:
    session = SessionSettings(session_id="s", functions=(FunctionSpec(name="open_door"),))
    on_38 = setup_params(LiveSettings(model="gemini-3.8-live"), session, capabilities_for("gemini-3.8-live"))
    assert [d.get("behavior") for d in on_38.function_declarations] == ["NON_BLOCKING", "NON_BLOCKING"]
    on_31 = setup_params(LiveSettings(model="gemini-3.1-flash-live-preview"), session,
                         capabilities_for("gemini-3.1-flash-live-preview"))
    assert all("behavior" not in d for d in on_31.function_declarations)
    vertex = LiveSettings(model="gemini-3.8-live", vertex=VertexAuth(project="p"))
    assert all("behavior" not in d
               for d in setup_params(vertex, session, capabilities_for("gemini-3.8-live")).function_declarations)
    translate = setup_params(LiveSettings(model="gemini-3.5-live-translate-preview"), SessionSettings(session_id="s"),
                             capabilities_for("gemini-3.5-live-translate-preview"))
    assert translate.function_declarations == []


def test_session_media_resolution_reaches_the_rest_request_too() -> None:
    assert SessionSettings(session_id="s", media_resolution="low").media_resolution == "MEDIA_RESOLUTION_LOW"
    assert SessionSettings(session_id="s").media_resolution == ""  # the backend's own setting
    with pytest.raises(UsageError, match="media_resolution"):
        SessionSettings(session_id="s", media_resolution="ultra")
    body = build_request([], "What now?", media_resolution=SessionSettings(
        session_id="s", media_resolution="medium").media_resolution)
    assert body["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_MEDIUM"


def test_cli_flags_give_voice_media_resolution_and_tools() -> None:
    parser = build_parser()
    args = parser.parse_args(["replay", "clip.mp4", "--voice", "Kore", "--media-resolution", "medium",
                              "--tool", "google_search", "--tool", "google_search"])
    settings = session_settings_from(args, "replay", "clip.mp4")
    assert (settings.voice, settings.media_resolution) == ("Kore", "MEDIA_RESOLUTION_MEDIUM")
    assert settings.tools == ("google_search", "google_search")  # the model check drops the repeat
    watch = parser.parse_args(["watch", "clip.mp4", "--server", "127.0.0.1:1", "--tool", "google_search"])
    assert model_settings_from(watch) == {"tools": ("google_search",)}  # not given: the server's defaults
    assert session_settings_from(parser.parse_args(["replay", "clip.mp4"]), "r", "clip.mp4").tools == ()
