"""The generated code in vision_stream/v1 must match protos/ exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.paths import ROOT


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "protos" / "generate.py"), str(tmp_path)], check=True)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*") if p.is_file())
    assert generated, "protoc produced nothing"
    for rel in generated:
        committed = ROOT / rel
        assert committed.is_file(), f"{rel} is generated but not committed: run python protos/generate.py"
        assert committed.read_bytes() == (tmp_path / rel).read_bytes(), (
            f"{rel} is stale: run python protos/generate.py"
        )


def test_event_oneof_names() -> None:
    from vision_stream.v1 import vision_stream_pb2 as pb

    names = [f.name for f in pb.Event.DESCRIPTOR.oneofs_by_name["payload"].fields]
    assert names == [
        "session_started", "commentary", "transcript", "detection", "audio_out",
        "backend_changed", "stats", "error", "session_ended", "alert",
    ]
