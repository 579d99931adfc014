"""The readable view (vision_stream/cli/render.py): the session id first, a time column that never
runs backwards, hidden partials accounted for, the legend in --help and README, and the progress
bar only on a terminal (a real pty)."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time

import pytest
from helpers.paths import ROOT, SAMPLES
from helpers.timing import scaled

from vision_stream.cli import main
from vision_stream.cli.render import LEGEND, Printer, Progress
from vision_stream.v1 import vision_stream_pb2 as pb

CLI = [sys.executable, "-m", "vision_stream.cli"]


def event(seq: int, media_time: float | None = None, **payload: object) -> pb.Event:
    e = pb.Event(session_id="cam-1", seq=seq, **payload)  # type: ignore[arg-type]
    if media_time is not None:
        e.media_time = media_time
    return e


def printed(events: list[pb.Event], *, as_json: bool = False) -> list[str]:
    out = io.StringIO()
    printer = Printer(as_json, out=out)
    for e in events:
        printer(e)
    return out.getvalue().splitlines()


def commentary(seq: int, t: float, text: str, *, final: bool) -> pb.Event:
    return event(seq, t, commentary=pb.Commentary(text=text, final=final))


def test_the_first_line_names_the_session() -> None:
    lines = printed([event(1, session_started=pb.SessionStarted(source="clip.mp4", backend="local"))])
    assert lines == ["[       -] #1    session_started session cam-1: clip.mp4 via local"]
    # A view that joins later (follow --after) starts with the id too.
    lines = printed([event(7, 3.0, stats=pb.Stats(frames_in=3))])
    assert lines[0] == "session cam-1 (from #7)" and lines[1].startswith("[    3.0s] #7 ")


def test_media_time_never_runs_backwards() -> None:
    lines = printed([
        event(1, 10.0, stats=pb.Stats()),
        event(2, 10.2, stats=pb.Stats()),  # the decoder is ahead ...
        event(3, 10.0, detection=pb.Detection(label="car", severity="low", confidence=0.9)),  # ... the model answers
        event(4, None, error=pb.Error(code="x", message="y")),
        event(5, 11.0, stats=pb.Stats()),
    ])
    assert lines[0] == "session cam-1 (from #1)"
    stamps = [line[1:9] for line in lines[1:]]
    assert stamps == ["   10.0s", "   10.2s", "   late ", "       -", "   11.0s"]
    assert "car [low, 0.90]" in lines[3]


def test_hidden_partials_are_counted_where_seq_skips() -> None:
    events = [commentary(1, 1.0, "A", final=False), commentary(2, 1.0, "A car", final=False),
              event(3, 1.0, detection=pb.Detection(label="car")),
              commentary(4, 1.0, "A car turns", final=False), commentary(5, 1.0, "A car turns.", final=True)]
    lines = printed(events)
    assert len(lines) == 3  # the header (it joined on a partial), the detection, the final text
    assert lines[1].startswith("[    1.0s] #3 ") and lines[1].endswith("(+2 partial updates hidden)")
    assert "#5" in lines[2] and "A car turns." in lines[2] and lines[2].endswith("(+1 partial update hidden)")
    assert len(printed(events, as_json=True)) == 5  # --json: every event, gap-free


def test_progress_line_extrapolates_the_eta() -> None:
    out = io.StringIO()
    bar = Progress(12.0, out)
    assert "ETA --:--" in bar.line(0.5)
    bar.update(event(2, 6.0, stats=pb.Stats()))
    assert bar.line(3.0) == "[############------------]  50%  6.0/12.0 s  ETA 0:03"
    assert out.getvalue().startswith("\r[") and out.getvalue().endswith("\x1b[K")
    bar.update(event(3, 12.0, session_ended=pb.SessionEnded(reason="end_of_input")))
    assert out.getvalue().endswith("\r\x1b[K")  # the bar is erased at the end


@pytest.mark.parametrize("command", ["replay", "watch", "follow"])
def test_legend_in_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    for words in ("[low, 1.00]", "@(0.09,0.11 0.66x0.59)", "audio 201", "late", "partial updates hidden",
                  "session ID"):
        assert words in help_text, words
    assert LEGEND.splitlines()[1] in help_text


def test_legend_in_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Reading the output.**", 1)[1].split("\n## ", 1)[0]
    for words in ("`motion [low, 1.00]`", "`@(0.00,0.24 1.00x0.60)`", "`audio 201`", "`late`",
                  "(+N partial updates hidden)", "progress bar"):
        assert words in section, words


def test_session_ended_counts_the_events_up_to_its_own_seq() -> None:
    """The closing line's count is its own #seq: the replay printed that many events (none hidden here)."""
    result = subprocess.run([*CLI, "replay", str(SAMPLES / "sample.mp4"), "--fast"], capture_output=True, text=True,
                            timeout=scaled(60), env={k: v for k, v in os.environ.items()
                                                     if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    last = lines[-1]
    seq = int(last.split("#", 1)[1].split()[0])
    assert "session_ended" in last and last.endswith(f"{seq} events") and len(lines) == seq, last


def _replay_in_a_pty() -> str:
    """``replay --fast`` with stdout and stderr on a pseudo-terminal, as in a user's shell."""
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    proc = subprocess.Popen([*CLI, "replay", str(SAMPLES / "sample.mp4"), "--fast"], stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + scaled(30)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: Linux reports the child's side of the pty closed
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        assert proc.wait(scaled(10)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return b"".join(chunks).decode()


def test_progress_bar_on_a_terminal_only() -> None:
    tty = _replay_in_a_pty()
    assert "ETA " in tty and "\r[" in tty and "/12.0 s" in tty, tty[-500:]
    assert "session_ended" in tty and tty.rstrip("\r\n").endswith("events")  # the bar is erased at the end
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    piped = subprocess.run([*CLI, "replay", str(SAMPLES / "sample.mp4"), "--fast"], capture_output=True, text=True,
                           env=env, timeout=scaled(30))
    assert piped.returncode == 0, piped.stderr
    assert "ETA" not in piped.stderr + piped.stdout and "\r" not in piped.stderr + piped.stdout
