"""The Gemini basics both paths share: model ids, durations, the key header, the REST base."""

from __future__ import annotations

import pytest

from vision_stream.backends.gemini_api import api_key_headers, bare_model_id, http_base, parse_duration


@pytest.mark.parametrize("name", [
    "gemini-flash-latest",
    " models/gemini-flash-latest ",
    "publishers/google/models/gemini-flash-latest",
    "projects/p/locations/us-central1/publishers/google/models/gemini-flash-latest",
])
def test_every_spelling_of_a_model_name_has_one_id(name: str) -> None:
    assert bare_model_id(name) == "gemini-flash-latest"


@pytest.mark.parametrize(("value", "seconds"), [
    ("34s", 34.0), ("0.500s", 0.5), (".5s", 0.5), ("3.s", 3.0), (" 2s ", 2.0), ("-1.5s", -1.5),
    ({"seconds": "2", "nanos": 5e8}, 2.5), ({"seconds": 7}, 7.0), ({}, 0.0),
])
def test_durations_in_both_proto3_json_forms(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", [
    None, 34, 3.5, True, "34", "s", "1.2.3s", "34 s", "34ms", {"seconds": "x"}, {"nanos": True}, ["1s"],
])
def test_anything_else_is_unknown_not_an_error(value: object) -> None:
    assert parse_duration(value) is None


def test_the_key_travels_in_one_header_and_rest_calls_use_the_http_scheme() -> None:
    assert api_key_headers("AIza-k") == {"x-goog-api-key": "AIza-k"} and api_key_headers("") == {}
    assert http_base("ws://127.0.0.1:8765/ws/some/path?x=1") == "http://127.0.0.1:8765"
    assert http_base("wss://generativelanguage.googleapis.com") == "https://generativelanguage.googleapis.com"
    assert http_base("https://example.test:8443/v1") == "https://example.test:8443"
