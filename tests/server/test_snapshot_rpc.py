"""AnalyzeSnapshot over gRPC with a key: the REST path, and its errors as gRPC statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from helpers.paths import SAMPLES
from helpers.rest import API_KEY

from vision_stream.backends.factory import BackendOptions
from vision_stream.redact import Secret
from vision_stream.server.app import start_server
from vision_stream.server.service import ServiceConfig
from vision_stream.testing.rest_emulator import RestEmulator
from vision_stream.testing.rest_knobs import RestFault
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc


@pytest.fixture
async def stub(rest_emulator: RestEmulator) -> AsyncIterator[pb_grpc.VisionStreamStub]:
    options = BackendOptions(api_key=Secret(API_KEY), rest_url=rest_emulator.url, rest_requests_per_minute=600)
    running = await start_server(ServiceConfig(backends=options), host="127.0.0.1", port=0)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield pb_grpc.VisionStreamStub(channel)
    finally:
        await channel.close()
        await running.stop(grace=2.0)


def still(**fields: str) -> pb.SnapshotRequest:
    return pb.SnapshotRequest(image=pb.VideoFrame(data=(SAMPLES / "still.jpg").read_bytes()), **fields)


async def test_snapshot_rpc_uses_rest_and_maps_errors(stub: pb_grpc.VisionStreamStub,
                                                      rest_emulator: RestEmulator) -> None:
    response = await stub.AnalyzeSnapshot(still(prompt="What is in it?"))
    assert response.backend == "rest" and response.model == "gemini-flash-latest" and "768x576" in response.text
    local = await stub.AnalyzeSnapshot(still(backend="local"))
    assert local.backend == "local"

    with pytest.raises(grpc.aio.AioRpcError) as not_found:
        await stub.AnalyzeSnapshot(still(model="gemini-2.5-flash-native-audio-latest"))
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND
    assert "--snapshot-model" in (not_found.value.details() or "")

    rest_emulator.knobs = replace(rest_emulator.knobs, faults=(RestFault(kind="blocked", count=1),))
    blocked = await stub.AnalyzeSnapshot(still())
    assert blocked.text.startswith("[blocked]") and "blockReason SAFETY" in blocked.text

    rest_emulator.knobs = replace(rest_emulator.knobs, faults=(RestFault(kind="badkey"),))
    with pytest.raises(grpc.aio.AioRpcError) as bad_key:
        await stub.AnalyzeSnapshot(still())
    assert bad_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "API key not valid" in (bad_key.value.details() or "")
    assert API_KEY not in (bad_key.value.details() or "")
