"""``vision-stream frames`` and ``replay`` on a camera, run as a user would (a real subprocess
against the loopback MJPEG camera): Ctrl-C stops them promptly; ``frames`` names its JPEGs
with the session's media time and never mixes two runs in one folder."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.cameras import MjpegServer, generated_mjpeg
from helpers.clips import make_clip
from helpers.paths import SAMPLES
from helpers.timing import scaled

from vision_stream.config import AudioPolicy, SamplingPolicy
from vision_stream.errors import UsageError
from vision_stream.media.file_source import FileSource
from vision_stream.media.frames_export import EXPORT_NAME, FrameExport
from vision_stream.media.sampler import FrameSampler
from vision_stream.media.types import VideoFrame

CLI = [sys.executable, "-m", "vision_stream.cli"]
EXIT_INTERRUPTED = 130  # the CLI's convention (vision_stream.cli.commands), as a shell reports SIGINT


def cli_env() -> dict[str, str]:
    """The user's environment without keys (the offline analyzer) or asyncio debug chatter."""
    return {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "PYTHONASYNCIODEBUG")}


@pytest.fixture
def camera() -> Iterator[MjpegServer]:
    server = MjpegServer(generated_mjpeg(), fps=8)
    try:
        yield server
    finally:
        server.close()


def interrupt(args: list[str], *, streaming: Callable[[], bool], after: float = 2.0) -> tuple[int, float, str, str]:
    """Start the CLI, SIGINT it once ``after`` s have passed and ``streaming()`` holds;
    returns (exit code, seconds from SIGINT to exit, stdout, stderr)."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())
    try:
        started = time.monotonic()
        deadline = started + scaled(20)
        while not (time.monotonic() - started >= after and streaming()):
            assert proc.poll() is None, f"ended before SIGINT: {proc.communicate()}"
            assert time.monotonic() < deadline, "the camera was never read"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=scaled(10))
        return proc.returncode, time.monotonic() - sent, out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_ctrl_c_stops_frames_on_a_camera(camera: MjpegServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, took, stdout, stderr = interrupt(["frames", camera.url(), "--out", str(out)],
                                           streaming=lambda: any(out.glob("*.jpg")))
    assert code == EXIT_INTERRUPTED and took < 3.0, (code, took, stderr)
    assert "Traceback" not in stderr, stderr
    written = sorted(p.name for p in out.iterdir())
    assert written and all(EXPORT_NAME.fullmatch(name) for name in written)
    assert stdout.strip() == f"interrupted: wrote {len(written)} JPEG frames to {out}"
    count = len(written)
    time.sleep(0.5)
    assert len(list(out.iterdir())) == count, "still writing after it exited"


def test_ctrl_c_stops_replay_of_a_camera(camera: MjpegServer) -> None:
    code, took, stdout, stderr = interrupt(["replay", camera.url()], streaming=lambda: camera.requests >= 1)
    assert code == EXIT_INTERRUPTED and took < 3.0, (code, took, stderr)
    assert "Traceback" not in stderr, stderr
    assert "session_ended" in stdout.splitlines()[-1] and "interrupted" in stdout.splitlines()[-1]


# ----------------------------------------------------------------- frames names

def name_time(name: str) -> str:
    match = re.fullmatch(r"\d+_(\d+\.\d{3})s_[a-z]+\.jpg", name)
    assert match is not None, name
    return f"{float(match.group(1)):.3f}"


def test_frame_names_carry_the_session_media_time_when_video_starts_after_audio(tmp_path: Path) -> None:
    """The audio starts at 0 and the video at 0.5 s: ``frames`` (video only) names each JPEG
    with the media time a session (video and audio) gives that frame, the one its events print."""
    clip = make_clip(tmp_path / "late_video.mp4", audio=True, times_ms=[500 + 100 * i for i in range(30)])
    session = FileSource(clip, audio=AudioPolicy(), sample_interval=1.0)
    sampler = FrameSampler(SamplingPolicy())
    expected = []
    try:
        for item in session.items():
            if isinstance(item, VideoFrame) and (chosen := sampler.offer(item)) is not None:
                expected.append(f"{chosen.media_time:.3f}")
    finally:
        session.close()
    assert float(expected[0]) >= 0.4  # the clip does start its video late

    out = tmp_path / "out"
    FrameExport(str(clip), out, SamplingPolicy()).run()
    assert [name_time(p.name) for p in sorted(out.iterdir())] == expected


# ------------------------------------------------------------------ the folder

def test_frames_refuses_a_used_folder_and_overwrite_clears_only_its_own(tmp_path: Path) -> None:
    sample = str(SAMPLES / "sample.mp4")
    out = tmp_path / "out"
    first = FrameExport(sample, out, SamplingPolicy()).run()
    ours = sorted(p.name for p in out.iterdir())
    (out / "notes.txt").write_text("mine")
    (out / "99999_99999.000s_cadence.jpg").write_bytes(b"from an older run")

    with pytest.raises(UsageError, match="is not empty") as refused:
        FrameExport(sample, out, SamplingPolicy()).run()
    assert str(out) in refused.value.message and "--overwrite" in refused.value.message
    assert len(list(out.iterdir())) == first + 2  # nothing written, nothing deleted

    again = FrameExport(sample, out, SamplingPolicy(), overwrite=True).run()
    assert again == first
    assert sorted(p.name for p in out.iterdir()) == sorted([*ours, "notes.txt"])

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        FrameExport(sample, a_file, SamplingPolicy()).run()


def test_frames_into_a_used_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "old.jpg").write_bytes(b"x")
    result = subprocess.run([*CLI, "frames", str(SAMPLES / "sample.mp4"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=scaled(60), env=cli_env())
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and str(tmp_path) in result.stderr and "--overwrite" in result.stderr


def test_close_before_run_writes_nothing(tmp_path: Path) -> None:
    export = FrameExport(str(SAMPLES / "sample.mp4"), tmp_path / "out", SamplingPolicy())
    export.close()
    assert export.run() == 0 and export.interrupted
