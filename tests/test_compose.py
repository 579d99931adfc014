"""docker/compose.yaml without Docker: its structure, the files it references, and that the
pieces agree (ports, service names, the camera's URL, the server's command line); the test
camera's module runs here exactly as its container runs it. ``docker compose config`` is
used when the Compose plugin is installed (skipped otherwise)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers.cameras import RtspServer, free_port, gstreamer_missing
from helpers.paths import ROOT, SAMPLES

from vision_stream.cli.parser import build_parser
from vision_stream.server.cameras import load_cameras
from vision_stream.sinks.config import MqttSinkConfig, load_sinks

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra: pip install -e '.[test]'")

DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
CAMERA_DOCKERFILE = DOCKER / "rtsp-camera" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service = compose["services"][name]
    assert isinstance(service, dict)
    return service


def _published(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> "host_ip:host_port" of a service's short-form ports."""
    out: dict[int, str] = {}
    for spec in service.get("ports", []):
        host_ip, host_port, container = str(spec).split(":")
        out[int(container)] = f"{host_ip}:{host_port}"
    return out


def _option(command: list[str], name: str) -> str:
    """The value of ``--name=VALUE`` in a compose command list."""
    values = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
    assert values, f"--{name} missing from {command}"
    return values[-1]


def _camera_cmd() -> list[str]:
    """The exec-form CMD of the camera's Dockerfile (continuation lines joined)."""
    text = CAMERA_DOCKERFILE.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("CMD "))
    cmd = json.loads(line[4:])
    assert isinstance(cmd, list)
    return [str(arg) for arg in cmd]


def _dockerfile_copies(path: Path) -> list[str]:
    sources = []
    for line in path.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += line.split()[1:-1]
    return sources


def test_services_ports_and_health_checks(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"server", "mosquitto", "rtsp-camera"}
    server = _service(compose, "server")
    command = server["command"]
    assert command[0] == "serve"
    # Published on loopback only (the server runs --insecure inside the Compose network).
    grpc_port, http_port = int(_option(command, "port")), int(_option(command, "http-port"))
    assert _published(server) == {grpc_port: f"127.0.0.1:{grpc_port}", http_port: f"127.0.0.1:{http_port}"}
    assert _published(_service(compose, "mosquitto")) == {1883: "127.0.0.1:1883"}
    assert 8554 in _published(_service(compose, "rtsp-camera"))
    for name, service in compose["services"].items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    # The key is optional and only ever comes from the environment.
    assert server["environment"]["GEMINI_API_KEY"] == "${GEMINI_API_KEY:-}"
    assert server["depends_on"]["rtsp-camera"]["condition"] == "service_healthy"


def test_the_server_command_line_is_one_serve_accepts(compose: dict[str, Any]) -> None:
    args = build_parser().parse_args(_service(compose, "server")["command"])
    assert (args.host, args.port, args.http_port) == ("0.0.0.0", 50051, 8080)
    assert args.config == Path("/config/cameras.toml") and args.insecure
    # The image's health check finds the port in PID 1's command line: --port=N is read too.
    assert "--port=50051" in _service(compose, "server")["command"]


def test_referenced_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "build" in service:
            context = (DOCKER / service["build"]["context"]).resolve()
            assert context == ROOT, name
            dockerfile = context / service["build"]["dockerfile"]
            assert dockerfile.is_file(), name
            for source in _dockerfile_copies(dockerfile):
                assert (context / source).exists(), f"{dockerfile}: COPY {source}"
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            assert (DOCKER / source).is_file(), f"{name}: {volume}"


def test_cameras_file_points_at_the_camera_and_the_broker(compose: dict[str, Any]) -> None:
    mount = next(v for v in _service(compose, "server")["volumes"] if ":/config/cameras.toml" in v)
    path = DOCKER / mount.split(":")[0]
    cameras = load_cameras(path, env={})
    assert [camera.name for camera in cameras] == ["compose-camera"]
    cmd = _camera_cmd()
    port, served = cmd[cmd.index("--port") + 1], cmd[cmd.index("--file") + 1].split("=")[0]
    assert cameras[0].source == f"rtsp://rtsp-camera:{port}{served}"
    [sink] = load_sinks(path, env={})
    assert isinstance(sink, MqttSinkConfig)
    assert (sink.host, sink.port) == ("mosquitto", 1883)
    conf = (DOCKER / "compose" / "mosquitto.conf").read_text()
    assert "listener 1883 0.0.0.0" in conf


def test_docker_compose_config_accepts_it() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip("the Docker Compose plugin is not installed (apt-get install docker-compose-plugin)")
    done = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                          capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_camera_module_serves_the_sample_as_its_container_runs_it() -> None:
    """The container's CMD, with its paths mapped to the checkout, through the same
    fixture class the camera tests use; one RTSP client decodes frames of the sample."""
    why = gstreamer_missing()
    if why is not None:
        pytest.skip(why)
    import av

    cmd = _camera_cmd()
    args = cmd[2:]  # after /usr/bin/python3 /app/rtsp_camera.py
    assert cmd[1] == "/app/rtsp_camera.py" and "--host" in args
    at = args.index("--port")
    del args[at:at + 2]  # RtspServer passes its own free port
    args[args.index("--host") + 1] = "127.0.0.1"  # loopback here; 0.0.0.0 inside the container
    args = [a.replace("/app/sample.mp4", str(SAMPLES / "sample.mp4")) for a in args]
    server = RtspServer(args, port=free_port())
    server.start()
    try:
        mount = args[args.index("--file") + 1].split("=")[0]
        with av.open(server.url(mount), options={"rtsp_transport": "tcp"}, timeout=10) as container:
            deadline = time.monotonic() + 10
            sizes = []
            for frame in container.decode(video=0):
                sizes.append((frame.width, frame.height))
                if len(sizes) >= 5 or time.monotonic() > deadline:
                    break
        with av.open(str(SAMPLES / "sample.mp4")) as sample:
            expected = (sample.streams.video[0].width, sample.streams.video[0].height)
        assert len(sizes) >= 5 and set(sizes) == {expected}
    finally:
        server.stop()
