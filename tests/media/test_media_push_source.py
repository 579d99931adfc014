from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.clips import remux
from helpers.timing import scaled

from vision_stream.config import AudioPolicy, Limits, SamplingPolicy
from vision_stream.errors import InvalidInputError, LimitExceededError, SessionError, SourceOpenError
from vision_stream.media.file_source import FileSource
from vision_stream.media.push_source import PushSource
from vision_stream.media.sampler import FrameSampler
from vision_stream.media.types import AudioChunk, BadPacket, MediaItem, SampledFrame, VideoFrame

AUDIO = AudioPolicy()


def _source(**limits: int) -> PushSource:
    return PushSource(audio=AUDIO, limits=Limits(**limits))


async def _collect(source: PushSource) -> list[MediaItem]:
    return await asyncio.wait_for(asyncio.to_thread(lambda: list(source.items())), scaled(20))


def _jpeg(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


# -- synchronous validation -------------------------------------------------

RAW_OK = bytes(4 * 2 * 3)


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda s: s.put_raw(RAW_OK[:-1], 4, 2, "rgb24"), InvalidInputError, "frame.data"),
        (lambda s: s.put_raw(RAW_OK, 4, 2, "yuv420p"), InvalidInputError, "frame.format"),
        (lambda s: s.put_raw(b"", 0, 2, "rgb24"), InvalidInputError, "frame.width"),
        (lambda s: s.put_raw(bytes(3 * 101), 101, 1, "bgr24"), LimitExceededError, "frame"),
        (lambda s: s.put_raw(RAW_OK, 4, 2, "rgb24", float("nan")), InvalidInputError, "frame.media_time"),
        (lambda s: s.put_image(b"definitely not a picture"), InvalidInputError, "frame.data"),
        (lambda s: s.put_image(b"\xff\xd8\xff\xe0\x00\x10JFIF"), InvalidInputError, "frame.data"),
        (lambda s: s.put_image(_jpeg(np.zeros((20, 20, 3), np.uint8))), LimitExceededError, "frame"),
        (lambda s: s.put_pcm(bytes(3), 16000, 1), InvalidInputError, "audio.pcm_s16le"),
        (lambda s: s.put_pcm(bytes(6), 16000, 2), InvalidInputError, "audio.pcm_s16le"),
        (lambda s: s.put_pcm(bytes(4), 7999, 1), InvalidInputError, "audio.sample_rate"),
        (lambda s: s.put_pcm(bytes(4), 192001, 1), InvalidInputError, "audio.sample_rate"),
        (lambda s: s.put_pcm(bytes(4), 16000, 0), InvalidInputError, "audio.channels"),
        (lambda s: s.put_pcm(bytes(18), 16000, 9), InvalidInputError, "audio.channels"),
    ],
)
async def test_validation_before_queueing(
    call: Callable[[PushSource], object], error: type, field: str
) -> None:
    source = _source(max_frame_pixels=100)
    with pytest.raises(error, match=field.replace(".", r"\.")):
        await call(source)  # type: ignore[misc]
    assert source.messages_in == 0


async def test_modes_do_not_mix() -> None:
    source = _source()
    await source.put_container(b"\x47" * 188)
    with pytest.raises(InvalidInputError, match="frame"):
        await source.put_raw(RAW_OK, 4, 2, "rgb24")
    rejected_first = _source()
    with pytest.raises(InvalidInputError):
        await rejected_first.put_image(b"garbage")
    await rejected_first.put_container(b"\x47" * 188)  # a rejected message does not fix the mode
    other = _source()
    await other.put_pcm(bytes(4), 16000, 1)
    with pytest.raises(InvalidInputError, match="media"):
        await other.put_container(b"\x47" * 188)


# -- frames mode ------------------------------------------------------------


async def test_frames_audio_and_bad_image(still_jpeg: bytes) -> None:
    source = _source()
    await source.put_image(still_jpeg, 0.0)
    red_rgb = np.zeros((4, 6, 3), np.uint8)
    red_rgb[..., 0] = 255
    await source.put_raw(red_rgb.tobytes(), 6, 4, "rgb24", 0.1)
    await source.put_raw(bytes([7]) * 24, 6, 4, "gray8", 0.2)
    png = cv2.imencode(".png", np.full((5, 7, 3), 50, np.uint8))[1].tobytes()
    await source.put_image(png, 0.3)
    await source.put_image(still_jpeg[:2000], 0.4)  # header fine, body truncated
    tone = (8000 * np.sin(np.arange(4800) / 48000 * 2 * np.pi * 440)).astype("<i2")
    stereo = np.repeat(tone, 2)
    await source.put_pcm(stereo.tobytes(), 48000, 2, 0.0)  # 100 ms
    source.end()
    items = await _collect(source)

    frames = [i for i in items if isinstance(i, VideoFrame)]
    assert [f.media_time for f in frames] == [0.0, 0.1, 0.2, 0.3]
    assert frames[0].to_bgr().shape == (600, 800, 3)
    assert not frames[1].converted  # raw pixels convert lazily
    assert frames[1].thumbnail_gray(3, 2).shape == (2, 3) and not frames[1].converted
    assert frames[1].to_bgr()[0, 0].tolist() == [0, 0, 255]  # RGB red -> BGR red
    assert frames[2].to_bgr()[0, 0].tolist() == [7, 7, 7]
    assert frames[3].to_bgr().shape == (5, 7, 3)
    bad = [i for i in items if isinstance(i, BadPacket)]
    # A truncated JPEG may decode partially (libjpeg pads) or fail: either way no crash.
    assert len(bad) <= 1 and len(frames) + len(bad) in (4, 5)
    chunks = [i for i in items if isinstance(i, AudioChunk)]
    assert sum(len(c.pcm) for c in chunks) // 2 == pytest.approx(1600, abs=40)
    assert all(len(c.pcm) == 1600 for c in chunks[:-1])


async def test_undecodable_image_body_is_a_bad_packet() -> None:
    jpeg = bytearray(_jpeg(np.zeros((64, 64, 3), np.uint8)))
    sos = jpeg.index(b"\xff\xda")
    body = jpeg[: sos + 2] + b"\xff\xff\xff\xff" * 8  # SOS length destroyed
    source = _source()
    await source.put_image(bytes(body), 1.5)
    source.end()
    items = await _collect(source)
    assert items == [BadPacket(1.5, "frame.data: undecodable image")]
    assert source.bad_packets == 1


async def test_pushed_jpegs_are_lazy_until_sampled(still_jpeg: bytes) -> None:
    source = _source()
    for i in range(3):
        await source.put_image(still_jpeg, i * 0.1)
    source.end()
    frames = [i for i in await _collect(source) if isinstance(i, VideoFrame)]
    assert [(f.width, f.height) for f in frames] == [(800, 600)] * 3  # from the header
    assert not any(f.converted for f in frames)  # no full-size decode for frames nobody samples
    assert frames[0].thumbnail_gray(64, 36).shape == (36, 64) and not frames[0].converted
    assert frames[1].to_bgr().shape == (600, 800, 3)


async def test_arrival_time_when_media_time_absent() -> None:
    clock = iter([100.0, 100.25, 101.0])
    source = PushSource(audio=AUDIO, limits=Limits(), clock=lambda: next(clock))
    for _ in range(3):
        await source.put_raw(RAW_OK, 4, 2, "bgr24")
    source.end()
    assert [i.media_time for i in await _collect(source)] == [0.0, 0.25, 1.0]


# -- backpressure and shutdown ---------------------------------------------


async def test_backpressure_waits_without_blocking_the_loop() -> None:
    source = _source(push_queue=2)
    await source.put_raw(RAW_OK, 4, 2, "bgr24", 0.0)
    await source.put_raw(RAW_OK, 4, 2, "bgr24", 0.1)
    third = asyncio.create_task(source.put_raw(RAW_OK, 4, 2, "bgr24", 0.2))
    await asyncio.sleep(0.05)  # the loop runs (this sleep returns) while the put waits
    assert not third.done()
    items: Iterator[MediaItem] = source.items()
    first = await asyncio.to_thread(next, items)
    assert isinstance(first, VideoFrame) and first.media_time == 0.0
    await asyncio.wait_for(third, scaled(2))  # room made by the consumer wakes the producer
    source.end()
    rest = await asyncio.to_thread(list, items)
    assert [i.media_time for i in rest] == [0.1, 0.2]  # type: ignore[union-attr]


async def test_byte_budget_bounds_buffer() -> None:
    source = PushSource(audio=AUDIO, limits=Limits(), max_buffer_bytes=100)
    await source.put_container(bytes(80))
    blocked = asyncio.create_task(source.put_container(bytes(80)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    source.close()
    with pytest.raises(SessionError):
        await asyncio.wait_for(blocked, scaled(2))


async def test_put_after_end_or_close() -> None:
    source = _source()
    source.end()
    with pytest.raises(SessionError, match="ended"):
        await source.put_raw(RAW_OK, 4, 2, "bgr24")
    assert await _collect(source) == []
    closed = _source()
    closed.close()
    with pytest.raises(SessionError, match="closed"):
        await closed.put_pcm(bytes(4), 16000, 1)


async def test_close_unblocks_waiting_consumer() -> None:
    source = _source()
    await source.put_container(b"\x00" * 100)  # too little to probe: the demuxer waits
    consumer = asyncio.create_task(_collect(source))
    await asyncio.sleep(0.1)
    assert not consumer.done()
    source.close()
    assert await asyncio.wait_for(consumer, scaled(5)) == []


# -- container mode ---------------------------------------------------------


async def _push_split(source: PushSource, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rng.randint(1, 24_000)
        await source.put_container(data[pos : pos + size])
        pos += size
    source.end()


def _sampled(
    items: Iterator[MediaItem] | list[MediaItem],
) -> tuple[list[SampledFrame], list[AudioChunk], int]:
    sampler = FrameSampler(SamplingPolicy())
    frames: list[SampledFrame] = []
    chunks: list[AudioChunk] = []
    bad = 0
    for item in items:
        if isinstance(item, VideoFrame):
            if (s := sampler.offer(item)) is not None:
                frames.append(s)
        elif isinstance(item, AudioChunk):
            chunks.append(item)
        elif isinstance(item, BadPacket):
            bad += 1
    return frames, chunks, bad


@pytest.mark.parametrize(
    ("fmt", "ext", "options"),
    [
        ("mpegts", "ts", None),
        ("mp4", "mp4", {"movflags": "frag_keyframe+empty_moov+default_base_moof"}),
        ("matroska", "mkv", None),
    ],
)
async def test_random_split_push_equals_file(
    tmp_path: Path, sample_clip: Path, fmt: str, ext: str, options: dict | None
) -> None:
    path = remux(sample_clip, tmp_path / f"clip.{ext}", fmt, options)
    expected, expected_audio, _ = await asyncio.to_thread(_sampled, FileSource(path, audio=AUDIO).items())
    source = _source(push_queue=8)
    producer = asyncio.create_task(
        _push_split(source, await asyncio.to_thread(path.read_bytes), seed=len(ext))
    )
    got, got_audio, bad = await asyncio.wait_for(asyncio.to_thread(_sampled, source.items()), scaled(30))
    await producer
    assert bad == 0
    assert [(s.media_time, s.reason) for s in got] == [(s.media_time, s.reason) for s in expected]
    assert any(s.reason == "scene" for s in got)
    for a, b in zip(got, expected, strict=True):
        assert np.abs(a.pixels.astype(int) - b.pixels.astype(int)).mean() < 1.0
    assert [c.media_time for c in got_audio] == [c.media_time for c in expected_audio]


async def test_shared_webm_push(shared_media: Path) -> None:
    data = await asyncio.to_thread((shared_media / "mediabunny_trim-buck-bunny_vp9_opus.webm").read_bytes)
    source = _source()
    producer = asyncio.create_task(_push_split(source, data, seed=5))
    frames, chunks, bad = await asyncio.wait_for(asyncio.to_thread(_sampled, source.items()), scaled(30))
    await producer
    assert bad == 0 and len(frames) >= 5 and len(chunks) > 90


async def test_faststart_mp4_streams(sample_clip: Path) -> None:
    source = _source()
    producer = asyncio.create_task(
        _push_split(source, await asyncio.to_thread(sample_clip.read_bytes), seed=9)
    )
    frames, _, _ = await asyncio.wait_for(asyncio.to_thread(_sampled, source.items()), scaled(30))
    await producer
    assert len(frames) == 13


@pytest.mark.parametrize("size", [16, 200_000, 3_000_000])
async def test_garbage_container_fails_without_hanging(size: int) -> None:
    source = _source()
    garbage = random.Random(size).randbytes(size)

    async def produce() -> None:
        try:
            await _push_split(source, garbage, seed=1)
        except SessionError:
            pass  # the consumer gave up first: the handler sees the source closed

    producer = asyncio.create_task(produce())
    with pytest.raises(SourceOpenError, match="not a readable media container"):
        await _collect(source)
    await asyncio.wait_for(producer, scaled(5))
