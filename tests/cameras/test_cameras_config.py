"""cameras.toml: a valid file becomes value objects; every mistake is one clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vision_stream.server import cameras as cameras_module
from vision_stream.server.cameras import CameraConfigError, load_cameras, parse_cameras

ORIGIN = Path("/etc/vision-stream/cameras.toml")


def parse(text: str, env: dict[str, str] | None = None):
    return parse_cameras(text, origin=ORIGIN, env=env or {})


def test_the_documented_example_parses(tmp_path: Path) -> None:
    doc = cameras_module.__doc__ or ""
    example = doc.split("Example ``cameras.toml``::", 1)[1].split("\nSources:", 1)[0]
    text = "\n".join(line[4:] for line in example.splitlines())
    cams = parse(text, env={"DRIVEWAY_PASSWORD": "pa:ss/wd"})
    assert [c.name for c in cams] == ["driveway", "lobby", "desk"]
    driveway = cams[0]
    assert driveway.source == "rtsp://viewer:pa%3Ass%2Fwd@192.168.1.20:554/stream1"
    assert driveway.description == "rtsp://viewer:***@192.168.1.20:554/stream1"
    assert "pa" not in repr(driveway).replace("parameters", "")  # repr never shows the source
    assert driveway.sampling.fps == 0.5 and driveway.sampling.max_fps == 2.0
    assert driveway.commentary_interval == 15.0 and driveway.functions[0].name == "report_vehicle"
    assert driveway.connection.read_timeout == 5.0 and driveway.connection.reconnect.max_attempts is None
    assert cams[1].backend == "local" and cams[2].source == "/dev/video0"
    assert driveway.settings().session_id == "driveway"


def test_file_sources_resolve_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "rec.mp4").write_bytes(b"x")
    path = tmp_path / "cameras.toml"
    path.write_text('[cameras.demo]\nsource = "rec.mp4"\nloop = true\n')
    (cam,) = load_cameras(path)
    assert cam.source == str(tmp_path / "rec.mp4") and cam.loop


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[cameras.a]\nsource = "rtsp://h/x"\nfsp = 1\n', "cameras.a.fsp", "unknown key"),
        ('[cameras.a]\nsource = "rtsp://h/x"\n[cameras.a.sampling]\nfps = 50\n', "cameras.a.sampling",
         "fps must be in"),
        ('[cameras.a]\nsource = "rtsp://h/x"\n[cameras.a.sampling]\nfps = "fast"\n', "cameras.a.sampling.fps",
         "must be float"),
        ("[cameras.a]\nbackend = 'local'\n", "cameras.a.source", "missing"),
        ('[cameras.a]\nsource = "rtsp://h/x"\nbackend = "gpt"\n', "cameras.a.backend", "must be one of"),
        ('[cameras.a]\nsource = "rtsp://u@h/x"\npassword_env = "NOPE"\n', "cameras.a.password_env",
         "NOPE is not set"),
        ('[cameras."a b"]\nsource = "rtsp://h/x"\n', "cameras.a b", "session ids"),
        ('[cameras.a]\nsource = "ftp://h/x"\n', "cameras.a.source", "unsupported scheme"),
        ('[cameras.a]\nsource = "missing.mp4"\n', "cameras.a.source", "no such file"),
        ('[defaults.reconnect]\nmax_delay = 0.1\n[cameras.a]\nsource = "rtsp://h/x"\n', "cameras.a.reconnect",
         "max_delay"),
        ('[defaults.connection]\ntransport = "sctp"\n[cameras.a]\nsource = "rtsp://h/x"\n',
         "cameras.a.connection", "transport"),
        ('[cameras.a]\nsource = "rtsp://h/x"\ncommentary_interval = 0.1\n', "cameras.a",
         "commentary_interval"),
        ('[cameras.a]\nsource = "rtsp://h/x"\n[[cameras.a.tools]]\nname = "1bad"\n', "cameras.a.tools[0].name",
         "not a valid function name"),
        ("", "cameras", "no cameras configured"),
        ("[cameras.a\n", "not valid TOML", ""),
    ],
)
def test_mistakes_name_file_key_and_problem(text: str, key: str, problem: str) -> None:
    with pytest.raises(CameraConfigError) as caught:
        parse(text)
    message = caught.value.message
    assert message.startswith(f"{ORIGIN}: "), message
    assert key in message and problem in message, message


def test_errors_never_show_a_password() -> None:
    with pytest.raises(CameraConfigError) as caught:
        parse('[cameras.a]\nsource = "rtsp://u:hunter2@/x"\n')
    assert "hunter2" not in caught.value.message and re.search("no host", caught.value.message)


def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CameraConfigError, match="cannot read the cameras file"):
        load_cameras(tmp_path / "absent.toml")


def test_cli_serve_reports_a_bad_config_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vision_stream.cli import main

    path = tmp_path / "cameras.toml"
    path.write_text('[cameras.a]\nsource = "rtsp://h/x"\nbackend = "gpt"\n')
    assert main(["serve", "--port", "0", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}: cameras.a.backend" in err
