"""Hypothesis strategies over every client-controlled field of the VisionStream API.

Each strategy mixes values a well-behaved client sends (so examples get past validation
into the decoders and the session) with the edges an attacker tries: odd characters,
absurd sizes, non-finite numbers, out-of-range enums, bad JSON, mutated real media.
"""

from __future__ import annotations

import itertools
import json
import math

from hypothesis import strategies as st

from helpers.fuzz import Seeds, jpeg_header, png_header
from vision_stream.v1 import vision_stream_pb2 as pb

CANARY_ID = "fuzz-canary"
U32 = 2**32 - 1

# protobuf strings are UTF-8: lone surrogates cannot even be encoded by a client.
_chars = st.characters(exclude_categories=("Cs",))
odd_text = st.text(_chars, max_size=40)
control_text = st.text(st.characters(max_codepoint=0x1F) | st.sampled_from("\x7f\u200b\u202e\ufeff\U0010fffd"),
                       min_size=1, max_size=20)


@st.composite
def long_text(draw: st.DrawFn, lengths: tuple[int, ...] = (65, 257, 4097, 20_000)) -> str:
    """A long string built by repetition (hypothesis would be slow to draw a megabyte). At most
    20k characters (80 kB of UTF-8): redact.scrub is quadratic in a message's length and holds
    the GIL, so a megabyte id wedges the whole process for minutes (the reproducer
    "scrub-quadratic" shows it with 64k characters)."""
    unit = draw(st.sampled_from(["x", "é", "\x00", "../", "%s%n", "\u202e", "😀"]))
    return unit * (draw(st.sampled_from(lengths)) // len(unit.encode()) + 1)


any_text = st.one_of(st.just(""), odd_text, control_text, long_text())

finite_edges = st.sampled_from([0.0, -0.0, -1.0, 1e-9, 0.49, 0.5, 1.0, 2.0, 29.9, 30.0, 30.1, 100.0, 3600.0, 3600.5,
                                1e9, 1e308, 5e-324, -1e308])
weird_float = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf]), finite_edges,
                        st.floats(allow_nan=True, allow_infinity=True))
u32 = st.one_of(st.sampled_from([0, 1, 2, 3, 15, 16, 100, 101, 768, 4096, 4097, 65535, 2**31 - 1, 2**31, U32]),
                st.integers(0, U32))

# --------------------------------------------------------------- SessionConfig

session_ids = st.one_of(
    st.just(""),
    st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
    st.sampled_from([CANARY_ID, "a" * 64, "a" * 65, ".", "..", "../x", "a/b", "s1", "-", " ", "ид", "a\x00b"]),
    odd_text,
    long_text(),
)
backends = st.one_of(st.sampled_from(["", "auto", "local", "local", "local", "live", "rest", "LOCAL", "local ",
                                      "gemini", "offline", "\x00"]), odd_text, long_text())
sampling = st.builds(pb.SamplingConfig, fps=weird_float, max_fps=weird_float, scene_threshold=weird_float,
                     max_side=u32, jpeg_quality=u32)


@st.composite
def json_nesting(draw: st.DrawFn) -> str:
    depth = draw(st.sampled_from([2, 50, 500, 1001, 5000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"a":[', "]}")]))
    inner = draw(st.sampled_from(["1", "{}", "null"]))
    closed = draw(st.booleans())
    return opener * depth + inner + (closer * depth if closed else "")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | odd_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4),
    max_leaves=12,
)
bad_json = st.one_of(
    st.just(""),
    json_values.map(json.dumps),
    st.dictionaries(odd_text, json_values, max_size=4).map(json.dumps),
    st.sampled_from(["{", "}", "{'a': 1}", '{"a": NaN}', '{"a": Infinity}', '{"a": 1e999}', "[]", "null", '"x"',
                     '{"a":1,"a":2}', '{"\\ud800": 1}', '{"a": "\\u0000"}', "\x00",
                     '{"type": "object", "properties": 5}',
                     '{"type": "nope", "properties": {"x": {"type": 7}}}']),
    json_nesting(),
    long_text().map(lambda s: '{"a": "' + s.replace("\\", "").replace('"', "") + '"}'),
    odd_text,
)
functions = st.lists(
    st.builds(pb.FunctionDeclaration,
              name=st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), odd_text,
                             st.sampled_from(["a" * 64, "a" * 65, "1abc", "a-b", ""]), long_text()),
              description=any_text, parameters_json=bad_json),
    max_size=3,
)
configs = st.builds(
    pb.SessionConfig,
    session_id=session_ids, sampling=sampling | st.just(pb.SamplingConfig()), backend=backends,
    commentary_interval=weird_float, persona=any_text, language=any_text, want_audio_out=st.booleans(),
    functions=functions, lossless=st.booleans(), model=any_text,
)


def good_config(**fields: object) -> pb.SessionConfig:
    """A config that passes validation (backend local), so later messages reach the session."""
    return pb.SessionConfig(backend="local", commentary_interval=1, lossless=True, **fields)  # type: ignore[arg-type]


# --------------------------------------------------------------- bytes


@st.composite
def mutated(draw: st.DrawFn, data: bytes, max_ops: int = 4) -> bytes:
    """``data`` after a few flips, inserts, deletes, duplications, and maybe a truncation."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "dup", "truncate"]))
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        if op == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            out[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del out[at : at + draw(st.integers(1, 4096))]
        elif op == "dup":
            out[at:at] = out[at : at + draw(st.integers(1, 4096))]
        else:
            del out[at:]
    return bytes(out)


@st.composite
def split(draw: st.DrawFn, data: bytes, max_pieces: int = 12) -> list[bytes]:
    """``data`` cut at random points (empty pieces included: clients may send them)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_pieces - 1)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


absurd_sides = st.sampled_from([0, 1, 2, 4097, 16000, 65535])


def images(seeds: Seeds) -> st.SearchStrategy[bytes]:
    """Encoded-image bytes: real, truncated, mutated, headers claiming absurd sizes, garbage."""
    real = st.sampled_from([seeds.jpeg, seeds.png])
    return st.one_of(
        real,
        real.flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])),
        real.flatmap(lambda b: mutated(b)),
        st.tuples(absurd_sides, absurd_sides).map(lambda wh: jpeg_header(*wh)),
        st.tuples(absurd_sides, absurd_sides).map(lambda wh: png_header(*wh)),
        st.binary(max_size=2048),
        st.sampled_from([b"\xff\xd8", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBP"]),
    )


_BPP = {pb.PIXEL_FORMAT_RGB24: 3, pb.PIXEL_FORMAT_BGR24: 3, pb.PIXEL_FORMAT_GRAY8: 1, pb.PIXEL_FORMAT_RGBA: 4,
        pb.PIXEL_FORMAT_BGRA: 4}
formats = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 77, -1, 2**31 - 1])
media_times = st.one_of(st.none(), weird_float)


@st.composite
def frames(draw: st.DrawFn, seeds: Seeds) -> pb.VideoFrame:
    fmt = draw(formats)
    width, height = draw(u32), draw(u32)
    if fmt == 0 or draw(st.booleans()):
        data = draw(images(seeds)) if fmt == 0 else draw(st.binary(max_size=256))
    else:
        # Raw pixels: often the exact size for small frames, else one byte off or absurd.
        width, height = draw(st.integers(0, 64)), draw(st.integers(0, 48))
        exact = width * height * _BPP.get(fmt, 3)
        size = draw(st.sampled_from([exact, exact, max(0, exact - 1), exact + 1, 0]))
        data = bytes([draw(st.integers(0, 255))]) * size
    frame = pb.VideoFrame(data=data, format=fmt, width=width, height=height)
    media_time = draw(media_times)
    if media_time is not None:
        frame.media_time = media_time
    return frame


@st.composite
def audio(draw: st.DrawFn) -> pb.AudioChunk:
    length = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 640, 641, 1600, 3200, 32001, 96000]))
    chunk = pb.AudioChunk(
        pcm_s16le=draw(st.binary(min_size=min(length, 64), max_size=64)).ljust(length, b"\x01")[:length],
        sample_rate=draw(st.one_of(st.sampled_from([0, 1, 7999, 8000, 16000, 44100, 48000, 96000, 192000, 10**9, U32]),
                                   st.integers(0, U32))),
        channels=draw(st.sampled_from([0, 1, 2, 3, 6, 8, 255, 256, U32])),
    )
    media_time = draw(media_times)
    if media_time is not None:
        chunk.media_time = media_time
    return chunk


def clip_pieces(seeds: Seeds) -> st.SearchStrategy[list[bytes]]:
    """A real clip (MP4, MPEG-TS, Matroska, fragmented MP4), mutated, then cut into slices."""
    clip = st.sampled_from(sorted(seeds.clips)).map(seeds.clips.__getitem__)
    return clip.flatmap(lambda b: mutated(b, max_ops=6)).flatmap(lambda b: split(b))


prompts = st.one_of(st.just(""), st.just(" \t\n"), odd_text, control_text, long_text(),
                    st.just("What is moving?"))
tool_results = st.builds(pb.ToolResult, call_id=st.one_of(st.just("call-1"), odd_text, long_text()),
                         name=st.one_of(st.just("f"), odd_text), response_json=bad_json)


def stream_messages(seeds: Seeds) -> st.SearchStrategy[pb.StreamRequest]:
    """Any single StreamRequest, including an empty one (no payload set)."""
    return st.one_of(
        configs.map(lambda c: pb.StreamRequest(config=c)),
        frames(seeds).map(lambda f: pb.StreamRequest(frame=f)),
        audio().map(lambda a: pb.StreamRequest(audio=a)),
        clip_pieces(seeds).map(lambda p: pb.StreamRequest(media=pb.MediaChunk(data=b"".join(p[:2])))),
        st.binary(max_size=512).map(lambda b: pb.StreamRequest(media=pb.MediaChunk(data=b))),
        prompts.map(lambda t: pb.StreamRequest(prompt=pb.Prompt(text=t))),
        tool_results.map(lambda t: pb.StreamRequest(tool_result=t)),
        st.just(pb.StreamRequest()),
    )


# --------------------------------------------------------------- other RPCs

_schemes = ["rtsp", "rtsps", "http", "https", "file", "ftp", "concat", "subfile", "data", "pipe", "tcp", "udp", "rtp",
            "srt", "hls", "crypto", "gopher", "smb", "sftp", "unix", "async", "cache", "tee", "fd", "javascript", "c"]
watch_sources = st.one_of(
    st.sampled_from(["sample.mp4", "./sample.mp4", "sub/../sample.mp4", "still.jpg", "sub", ".", "", "/", "..",
                     "../media/sample.mp4", "sample.mp4\x00.txt", "/etc/passwd", "/proc/self/environ", "~/x",
                     "sample.mp4/", "SAMPLE.MP4", "%2e%2e/x", "..\\x", "\\\\host\\share", "a" * 300, "a/" * 3000,
                     "x" * 5000]),
    st.tuples(st.sampled_from(_schemes), st.sampled_from(["127.0.0.1", "user:pw@127.0.0.1:1", "[::1]", "",
                                                          "127.0.0.1:0/../../etc/passwd", "%00"]),
              odd_text).map(lambda t: f"{t[0]}://{t[1]}/{t[2]}"),
    st.sampled_from(_schemes).map(lambda s: f"{s}:sample.mp4"),
    st.lists(st.sampled_from(["..", ".", "sub", "sample.mp4", "", "\x00", "x" * 255, "y" * 256]), max_size=8)
    .map("/".join),
    odd_text,
)
watch_requests = st.builds(pb.WatchRequest, source=watch_sources,
                           config=st.one_of(configs, st.just(good_config())),
                           fast=st.booleans(), loop=st.booleans(), detach=st.booleans())
subscribe_ids = st.one_of(st.just(CANARY_ID), session_ids)
after_seqs = st.one_of(st.sampled_from([0, 1, 2, 10_000, 2**63 - 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
stop_ids = session_ids.filter(lambda s: s != CANARY_ID)


@st.composite
def snapshots(draw: st.DrawFn, seeds: Seeds) -> pb.SnapshotRequest:
    image = draw(frames(seeds))
    return pb.SnapshotRequest(
        image=image, prompt=draw(prompts),
        backend=draw(st.one_of(st.sampled_from(["", "auto", "local", "rest", "live"]), odd_text)),
        model=draw(any_text),
    )
