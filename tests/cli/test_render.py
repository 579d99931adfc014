"""The readable view (vision_stream/cli/render.py): the session id first, a time column that never
runs backwards, hidden partials accounted for, the legend in --help and README, and the progress
bar only on a terminal (a real pty)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from helpers.paths import ROOT, SAMPLES
from helpers.terminal import run_in_pty, screen
from helpers.timing import scaled
from tqdm import tqdm

from vision_stream.cli import main
from vision_stream.cli.render import LEGEND, Printer, Progress, event_line
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


def test_progress_bar_draws_the_media_time_and_an_eta_then_erases_itself() -> None:
    out = io.StringIO()
    bar = Progress(12.0, out)
    assert "ETA ?" in screen(out.getvalue())[-1]  # nothing to extrapolate from yet
    bar.update(event(2, 6.0, stats=pb.Stats()))
    shown = screen(out.getvalue())[-1]
    assert " 50%|" in shown and "6.0/12.0 s  ETA " in shown, shown
    bar.update(event(3, 12.0, stats=pb.Stats()))
    assert "100%|" in screen(out.getvalue())[-1]
    bar.update(event(4, 12.0, session_ended=pb.SessionEnded(reason="end_of_input")))
    assert screen(out.getvalue())[-1] == ""  # erased at the end: the closing line says the totals


def test_progress_eta_extrapolates_the_rate_so_far() -> None:
    """Half the media in 3 s of wall time: 3 s to go (tqdm's own meter with our format)."""
    shown = tqdm.format_meter(6.0, 12.0, 3.0, bar_format=Progress.FORMAT)
    assert shown.startswith(" 50%|") and shown.endswith("| 6.0/12.0 s  ETA 00:03"), shown


def test_printed_lines_never_collide_with_the_bar() -> None:
    """Events on stdout and the bar on stderr share one terminal: each printed line shows whole."""
    term = io.StringIO()
    printer = Printer(False, progress=Progress(12.0, term), out=term)
    lines = [event(1, 2.0, stats=pb.Stats()), event(2, 6.0, detection=pb.Detection(label="car"))]
    for e in lines:
        printer(e)
    shown = screen(term.getvalue())
    assert shown[0] == "session cam-1 (from #1)" and shown[1:3] == [event_line(e).rstrip() for e in lines], shown
    assert "6.0/12.0 s" in shown[3], shown  # the bar, drawn again under the last line


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


def test_progress_bar_on_a_terminal_only() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    command = [*CLI, "replay", str(SAMPLES / "sample.mp4"), "--fast"]
    tty, code = run_in_pty(command, env=env)
    assert code == 0, tty[-500:]
    drawn = [part for part in tty.split("\r") if "/12.0 s  ETA " in part]
    assert drawn and any(part.lstrip().startswith("100%|") for part in drawn), tty[-500:]
    assert any(re.search(r"ETA \d\d:\d\d", part) for part in drawn), drawn
    shown = [line for line in screen(tty) if line]
    assert shown[-1].endswith("events") and "session_ended" in shown[-1]  # the bar is erased at the end
    assert all(line.startswith("[") for line in shown), shown  # no line broken by the bar
    piped = subprocess.run(command, capture_output=True, text=True, env=env, timeout=scaled(30))
    assert piped.returncode == 0, piped.stderr
    assert "ETA" not in piped.stderr + piped.stdout and "\r" not in piped.stderr + piped.stdout
    assert "\x1b" not in piped.stderr + piped.stdout
