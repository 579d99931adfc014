"""Token accounting (vision_stream.usage) and prices (vision_stream.pricing), checked
against the real recorded sessions' ``usageMetadata``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from helpers.live import read_vector
from helpers.paths import SHARED

from vision_stream.backends.gemini_live.messages import parse_server_message
from vision_stream.backends.gemini_rest.messages import join_chunks, parse_chunk
from vision_stream.backends.gemini_rest.sse import SSEParser
from vision_stream.errors import InvalidInputError
from vision_stream.pricing import estimate_cost, load_prices
from vision_stream.usage import Usage, usage_from_metadata


def _rest_vectors() -> Path:
    folder = SHARED / "vectors" / "rest"
    if not folder.is_dir():
        pytest.skip("../shared/vectors/rest is absent")
    return folder


def test_live_recordings_carry_one_usage_per_turn_on_turn_complete(live_vectors: Path) -> None:
    """Every recorded usageMetadata rides on the turnComplete message, once per turn: so a
    session sums them (they are per turn, not cumulative and not per message)."""
    seen = 0
    for path in sorted(live_vectors.glob("*.websocket.log")):
        messages = [parse_server_message(b) for d, b in read_vector(path) if d == "<"]
        turns = sum(1 for m in messages if m.server_content and m.server_content.turn_complete)
        with_usage = [m for m in messages if m.usage_metadata is not None]
        assert len(with_usage) <= turns
        for m in with_usage:
            seen += 1
            assert m.server_content is not None and m.server_content.turn_complete
            usage = m.usage_metadata
            assert usage is not None
            assert usage.usage.prompt == usage.prompt_token_count == 515
            assert usage.usage.get("output_text") == usage.response_token_count > 0
            assert usage.usage.total == usage.total_token_count
    assert seen == 2


def test_rest_recordings_usage_is_the_last_chunk_of_a_stream() -> None:
    """A streamed answer repeats running totals in every SSE chunk (the recording repeats
    promptTokenCount 15, then ends with 13 + 8): the reply keeps the last, never their sum."""
    data = json.loads((_rest_vectors() / "test_google_model_stream.json").read_text())
    raw = next(i["response"]["raw"] for i in data["interactions"] if "raw" in i["response"])
    parser = SSEParser()
    chunks = [parse_chunk(json.loads(p)) for p in parser.feed(raw) + parser.close()]
    assert [c.usage.get("input_text") for c in chunks] == [15, 15, 13]
    reply = join_chunks(chunks)
    assert reply.usage == chunks[-1].usage
    assert reply.usage.tokens == {"input_text": 13, "output_text": 8}


def test_rest_recorded_image_is_billed_as_image_tokens() -> None:
    data = json.loads((_rest_vectors() / "test_google_model_image_url_input.json").read_text())
    reply = parse_chunk(data["interactions"][-1]["response"]["body"])
    assert reply.usage.tokens == {"input_text": 11, "input_image": 1806, "output_text": 5}


def test_unattributed_prompt_tokens_count_as_text_and_extras_are_kept() -> None:
    """3.8 may leave 25-51 prompt tokens out of the modality details: they go to input_text,
    so the kinds still add up to what Google bills; tool-use and thoughts are their own kinds."""
    usage = usage_from_metadata({
        "promptTokenCount": "1330", "responseTokenCount": 60, "totalTokenCount": 1470,
        "promptTokensDetails": [{"modality": "VIDEO", "tokenCount": 1032}, {"modality": "AUDIO", "tokenCount": 256}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 60}],
        "toolUsePromptTokenCount": 30, "thoughtsTokenCount": 50,
    })
    assert usage.tokens == {"input_video": 1032, "input_audio": 256, "input_text": 42, "output_audio": 60,
                            "tool_use": 30, "thoughts": 50}
    assert usage.total == 1470
    assert (usage + usage).get("input_video") == 2064
    assert usage_from_metadata({"promptTokenCount": "junk", "candidatesTokenCount": -3}) == Usage()


def test_estimate_cost_uses_the_published_live_prices() -> None:
    table = load_prices()
    assert table.read == "2026-09"
    usage = Usage({"input_video": 1_000_000, "input_text": 1_000_000, "output_audio": 1_000_000,
                   "output_text": 1_000_000})
    # $3.00 video + $0.75 text in, $12.00 audio + $4.50 text out, per 1M tokens.
    assert estimate_cost(usage, "models/gemini-3.8-live", table) == pytest.approx(20.25)
    assert table.family_of("gemini-3.8-live-extended-thinking") == "gemini-3.8-live"
    assert table.family_of("some-future-model") == "default"


def test_flash_input_price_changes_on_its_date() -> None:
    table = load_prices()
    assert table.per_million("gemini-3.8-flash", dt.date(2026, 12, 31))["input_image"] == 0.75
    assert table.per_million("gemini-3.8-flash", dt.date(2027, 1, 1))["input_image"] == 1.50


def test_a_user_price_file_merges_over_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('read = "2026-11"\n[families."gemini-3.8-live"]\ninput_video = 1.0\n'
                    '[families.mine]\noutput_text = 2.0\n')
    table = load_prices(path)
    assert table.read == "2026-11"
    prices = table.per_million("gemini-3.8-live")
    assert prices["input_video"] == 1.0 and prices["output_audio"] == 12.0
    assert table.per_million("mine-1")["output_text"] == 2.0


@pytest.mark.parametrize(("text", "needle"), [
    ('[families.x]\ninput_video = "cheap"\n', "families.x.input_video must be a number"),
    ("[families.x]\ninput_vidoe = 1.0\n", "unknown kind families.x.input_vidoe"),
    ("[families.x\n", "not valid TOML"),
])
def test_a_bad_price_file_is_a_clear_usage_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=needle):
        load_prices(path)
    with pytest.raises(InvalidInputError, match="cannot read the price file"):
        load_prices(tmp_path / "absent.toml")


def test_emulator_token_model_rebills_the_context_each_turn_until_the_window_cuts() -> None:
    """testing/live_usage: tiles by resolution, and every turn bills the whole context again."""
    from vision_stream.testing.live_usage import ContextMeter, image_tokens

    assert image_tokens(768, 432, "MEDIA_RESOLUTION_LOW") == 64
    assert image_tokens(768, 432, "MEDIA_RESOLUTION_MEDIUM") == 258
    assert image_tokens(1024, 576, "") == 2 * 258  # bigger than 768 px: more tiles
    assert image_tokens(3008, 2000, "") == 4 * 3 * 258
    meter = ContextMeter.from_setup({"contextWindowCompression": {"slidingWindow": {"targetTokens": "500"},
                                                                 "triggerTokens": "1000"}})
    prompts = []
    for _ in range(6):
        meter.add("VIDEO", 258)
        usage_from = usage_from_metadata(meter.turn("a few words"))
        prompts.append(usage_from.prompt)
    assert prompts[:3] == [258, 258 * 2 + 38, 258 * 3 + 76]  # the answers (audio) join the context
    assert max(prompts) <= 1000 + 258 and prompts[4] < prompts[3]  # the sliding window cut it
    unbounded = ContextMeter.from_setup({})
    for _ in range(10):
        unbounded.add("VIDEO", 258)
        unbounded.turn("x")
    assert unbounded.total > 2580


def test_image_size_from_headers_without_pillow() -> None:
    """Token estimates read the size from the header: real JPEGs (baseline, progressive, with an EXIF-like
    APP1 before the frame) and PNGs as OpenCV encodes them, and the shipped still; garbage is None."""
    import subprocess
    import sys

    import cv2
    import numpy as np
    from helpers.paths import SAMPLES

    from vision_stream.usage import image_size, jpeg_tokens

    picture = np.random.default_rng(1).integers(0, 255, (480, 1000, 3), dtype=np.uint8)
    baseline = cv2.imencode(".jpg", picture)[1].tobytes()
    progressive = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    app1 = baseline[:2] + b"\xff\xe1\x00\x10" + b"Exif\x00\x00" + b"\x00" * 8 + baseline[2:]
    for data in (baseline, progressive, app1, cv2.imencode(".png", picture)[1].tobytes()):
        assert image_size(data) == (1000, 480)
    still = (SAMPLES / "still.jpg").read_bytes()
    decoded = cv2.imdecode(np.frombuffer(still, np.uint8), cv2.IMREAD_COLOR)
    assert image_size(still) == (decoded.shape[1], decoded.shape[0])
    assert image_size(b"not an image") is None and image_size(baseline[:40]) is None
    assert jpeg_tokens(baseline, "MEDIA_RESOLUTION_MEDIUM") == 258 * 2  # 1000x480: two 768 px tiles
    # The emulators import this module: it must work where Pillow is not installed (a fresh `pip install -e .`).
    code = ("import sys; sys.modules['PIL'] = None; import vision_stream.usage as u; "
            "print(u.image_size(open(sys.argv[1], 'rb').read()), u.jpeg_tokens(b'', 'LOW'))")
    out = subprocess.run([sys.executable, "-c", code, str(SAMPLES / "still.jpg")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == f"{(decoded.shape[1], decoded.shape[0])} 64"
