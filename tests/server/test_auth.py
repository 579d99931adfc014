"""Authentication, TLS and ownership over a real grpc.aio server on loopback.

Certificates are made at test time with ``cryptography`` (a CA, a server
certificate for 127.0.0.1, a client certificate); tokens through the real
tokens-file format. The authorization matrix is tests/security/test_authz.py.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers.paths import SAMPLES
from helpers.server import Served, bearer, serve, write_tokens

from vision_stream import client
from vision_stream.client import ClientTls
from vision_stream.config import Limits
from vision_stream.errors import AuthConfigError, UsageError
from vision_stream.server.access import SourceAccess
from vision_stream.server.app import start_server
from vision_stream.server.auth import (
    ANONYMOUS,
    ServerTls,
    check_exposure,
    load_server_tls,
    load_tokens,
    parse_tokens,
    token_digest,
)
from vision_stream.server.cameras import CameraConfig, parse_cameras
from vision_stream.server.service import ServiceConfig
from vision_stream.v1 import vision_stream_pb2 as pb
from vision_stream.v1 import vision_stream_pb2_grpc as pb_grpc

CLI = [sys.executable, "-m", "vision_stream.cli"]
DIGEST = "ab" * 32
CONFIG = pb.SessionConfig(backend="local", commentary_interval=60)


def config_for(media_root: Path) -> ServiceConfig:
    return ServiceConfig(access=SourceAccess(media_root=media_root), limits=Limits(max_sessions=8))


# ------------------------------------------------------------------ tokens file

@pytest.mark.parametrize(("text", "key", "problem"), [
    ("[tokens.alice", "not valid TOML", ""),
    ("", "tokens", "no tokens configured"),
    ("[users.alice]", "users", "unknown key"),
    (f'[tokens."al ice"]\nsha256 = "{DIGEST}"\nrights = ["push"]', "tokens.al ice", "token names"),
    (f'[tokens.anonymous]\nsha256 = "{DIGEST}"\nrights = ["push"]', "tokens.anonymous", "not 'anonymous'"),
    ('[tokens.alice]\nsha256 = "abc"\nrights = ["push"]', "tokens.alice.sha256", "64 hex digits"),
    ('[tokens.alice]\nrights = ["push"]', "tokens.alice.sha256", "64 hex digits"),
    (f'[tokens.alice]\nsha256 = "{DIGEST}"\nrights = "push"', "tokens.alice.rights", "must be a list"),
    (f'[tokens.alice]\nsha256 = "{DIGEST}"\nrights = ["push", "fly"]', "tokens.alice.rights", "unknown right 'fly'"),
    (f'[tokens.alice]\nsha256 = "{DIGEST}"\nrights = []', "tokens.alice.rights", "at least one right"),
    (f'[tokens.alice]\nsha256 = "{DIGEST}"\nrights = ["push"]\ntoken = "x"', "tokens.alice.token", "unknown key"),
    (f'[tokens.a]\nsha256 = "{DIGEST}"\nrights = ["push"]\n[tokens.b]\nsha256 = "{DIGEST.upper()}"\n'
     'rights = ["watch"]', "tokens.b.sha256", "the same token as tokens.a"),
])
def test_tokens_file_errors_name_the_file_and_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    origin = tmp_path / "tokens.toml"
    with pytest.raises(AuthConfigError) as caught:
        parse_tokens(text, origin=origin)
    message = caught.value.message
    assert message.startswith(f"{origin}: ") and key in message and problem in message, message
    assert isinstance(caught.value, UsageError)


def test_a_missing_tokens_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match=r"missing\.toml: cannot read the tokens file"):
        load_tokens(tmp_path / "missing.toml")


def test_token_new_prints_the_token_once_and_lines_that_authenticate_it(tmp_path: Path) -> None:
    made = subprocess.run([*CLI, "token", "new", "alice", "--rights", "push,subscribe"], capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    token = made.stderr.strip().splitlines()[-1]
    assert token.startswith("vst_") and token not in made.stdout
    table = parse_tokens(made.stdout, origin=tmp_path / "tokens.toml")
    principal = table.authenticate(bearer(token))
    assert principal.name == "alice" and principal.rights == {"push", "subscribe"}
    assert token_digest(token) in made.stdout
    refused = subprocess.run([*CLI, "token", "new", "bob", "--rights", "push,root"], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "unknown right 'root'" in refused.stderr
    assert "token" in subprocess.run([*CLI, "token", "--help"], capture_output=True, text=True,
                                     timeout=60).stdout


# ---------------------------------------------------------- tokens on a server

@dataclass
class Secured:
    served: Served
    tokens: dict[str, str]


@pytest.fixture
async def secured(tmp_path: Path, media_root: Path) -> AsyncIterator[Secured]:
    tokens = write_tokens(tmp_path / "tokens.toml", {
        "alice": ["push", "subscribe", "manage"], "bob": ["subscribe", "manage"], "root": ["admin"],
        "carol": ["push"],
    })
    camera = CameraConfig(name="lobby", source=str(SAMPLES / "sample.mp4"), description="sample.mp4", loop=True,
                          backend="local", viewers=("alice",))
    hidden = CameraConfig(name="vault", source=str(SAMPLES / "sample.mp4"), description="sample.mp4", loop=True,
                          backend="local")
    async for served in serve(config_for(media_root), media_root, tokens=load_tokens(tmp_path / "tokens.toml"),
                               cameras=[camera, hidden]):
        yield Secured(served, tokens)


async def test_no_token_or_a_wrong_one_is_unauthenticated_without_echoing_it(secured: Secured) -> None:
    stub = secured.served.stub
    for metadata, words in ((None, "missing credentials"), (bearer("vst_wrong-secret"), "invalid token"),
                            ((("authorization", "Token abc"),), "Bearer TOKEN")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListSessions(pb.ListSessionsRequest(), metadata=metadata)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert words in (caught.value.details() or "") and "wrong-secret" not in (caught.value.details() or "")
    # Refused before the handler: no session was made by the refused Stream.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in client.push_file(f"127.0.0.1:{secured.served.running.port}", SAMPLES / "sample.mp4",
                                        backend="local", fast=True, token="vst_wrong-secret"):
            pass
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED  # not INTERNAL (client waits for admission)
    assert secured.served.running.registry.running_count() == 2  # the two cameras


async def test_health_and_reflection_need_no_token(secured: Secured) -> None:
    channel = secured.served.channel
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stream = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = [s.name async for r in stream for s in r.list_services_response.service]
    assert "vision_stream.v1.VisionStream" in names


async def test_the_principal_reaches_streaming_handlers_and_owns_the_session(secured: Secured) -> None:
    """Stream is an async generator handler: the owner recorded must be the token's name."""
    target = f"127.0.0.1:{secured.served.running.port}"
    events = [e async for e in client.push_file(target, SAMPLES / "sample.mp4", backend="local", fast=True,
                                                session_id="alices", token=secured.tokens["alice"])]
    assert events[-1].HasField("session_ended")
    assert secured.served.running.registry.ownership("alices").owner == "alice"
    stub = secured.served.stub

    async def listed(name: str) -> set[str]:
        reply = await stub.ListSessions(pb.ListSessionsRequest(), metadata=bearer(secured.tokens[name]))
        return {s.session_id for s in reply.sessions}

    assert await listed("alice") == {"alices", "lobby"}
    assert await listed("bob") == set()
    assert await listed("root") == {"alices", "lobby", "vault"}
    bob = bearer(secured.tokens["bob"])  # subscribe and manage, but not the owner
    with pytest.raises(grpc.aio.AioRpcError) as stopping:
        await stub.StopSession(pb.StopSessionRequest(session_id="alices"), metadata=bob)
    with pytest.raises(grpc.aio.AioRpcError) as subscribing:
        await anext(aiter(stub.Subscribe(pb.SubscribeRequest(session_id="alices"), metadata=bob)))
    for caught in (stopping, subscribing):
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "no session 'alices'"  # the same words as for a missing session


async def test_another_principals_session_id_cannot_be_taken_even_after_it_ended(secured: Secured) -> None:
    """Reusing an ended session's id would replace its owner's retained events."""
    target = f"127.0.0.1:{secured.served.running.port}"

    async def push(name: str) -> list[pb.Event]:
        return [e async for e in client.push_file(target, SAMPLES / "still.jpg", backend="local", fast=True,
                                                  session_id="mine", token=secured.tokens[name])]

    assert (await push("alice"))[-1].HasField("session_ended")
    registry = secured.served.running.registry
    assert registry.ownership("mine").owner == "alice"
    for name, words in (("carol", "session id 'mine' is taken"),):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await push(name)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert words in (caught.value.details() or "")
    assert registry.ownership("mine").owner == "alice"  # untouched
    assert (await push("alice"))[-1].HasField("session_ended")  # her own ended id: allowed


async def test_cameras_are_seen_by_their_viewers_and_stopped_only_by_admins(secured: Secured) -> None:
    stub, tokens = secured.served.stub, secured.tokens
    first = await anext(aiter(stub.Subscribe(pb.SubscribeRequest(session_id="lobby"),
                                             metadata=bearer(tokens["alice"]))))
    assert first.session_id == "lobby"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.StopSession(pb.StopSessionRequest(session_id="lobby"), metadata=bearer(tokens["alice"]))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED  # she sees it, it is not hers
    for name, session in (("bob", "lobby"), ("alice", "vault")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await anext(aiter(stub.Subscribe(pb.SubscribeRequest(session_id=session), metadata=bearer(tokens[name]))))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    stopped = await stub.StopSession(pb.StopSessionRequest(session_id="vault"), metadata=bearer(tokens["root"]))
    assert stopped.session.session_id == "vault"


async def test_a_camera_viewer_without_a_token_is_refused_at_start(tmp_path: Path) -> None:
    write_tokens(tmp_path / "tokens.toml", {"alice": ["admin"]})
    camera = CameraConfig(name="lobby", source=str(SAMPLES / "sample.mp4"), description="x", viewers=("bobby",))
    with pytest.raises(UsageError, match="camera 'lobby': viewer 'bobby' has no token"):
        await start_server(config_for(SAMPLES), cameras=[camera], tokens=load_tokens(tmp_path / "tokens.toml"))


def test_cameras_file_viewers_default_override_and_check(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    text = ('[defaults]\nviewers = ["alice"]\n[cameras.a]\nsource = "clip.mp4"\n'
            '[cameras.b]\nsource = "clip.mp4"\nviewers = ["bob", "carol"]\n')
    a, b = parse_cameras(text, origin=tmp_path / "cameras.toml", env={})
    assert a.viewers == ("alice",) and b.viewers == ("bob", "carol")
    bad = '[cameras.a]\nsource = "clip.mp4"\nviewers = ["no spaces please"]\n'
    with pytest.raises(UsageError, match=r"cameras.a.viewers: must be a list of token names"):
        parse_cameras(bad, origin=tmp_path / "cameras.toml", env={})


# ------------------------------------------------------------------------ TLS

@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
           *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = _issue("test CA", ca_key, ca_name, ca_key, ca=True)
    files = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(role, key, ca_name, ca_key, server=role == "server")
        files[f"{role}_cert"] = tmp_path / f"{role}.pem"
        files[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}_key"] = tmp_path / f"{role}.key"
        files[f"{role}_key"].write_bytes(_key_pem(key))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Pki(ca=tmp_path / "ca.pem", **files)


async def _list(target: str, tls: bool | ClientTls) -> grpc.StatusCode:
    async with client.channel(target, tls=tls) as ch:
        try:
            await pb_grpc.VisionStreamStub(ch).ListSessions(pb.ListSessionsRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext(pki: Pki, media_root: Path) -> None:
    tls = load_server_tls(pki.server_cert, pki.server_key)
    async for served in serve(config_for(media_root), media_root, tls=tls, client_tls=ClientTls(root_ca=pki.ca)):
        target = f"127.0.0.1:{served.running.port}"
        assert (await served.stub.ListSessions(pb.ListSessionsRequest())).sessions == []
        assert await _list(target, False) is grpc.StatusCode.UNAVAILABLE
        assert await _list(target, ClientTls(root_ca=pki.client_cert)) is grpc.StatusCode.UNAVAILABLE  # not its CA


async def test_mtls_refuses_a_client_without_a_certificate(pki: Pki, media_root: Path) -> None:
    tls = load_server_tls(pki.server_cert, pki.server_key, pki.ca)
    assert tls.mutual
    with_cert = ClientTls(root_ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    async for served in serve(config_for(media_root), media_root, tls=tls, client_tls=with_cert):
        target = f"127.0.0.1:{served.running.port}"
        assert await _list(target, with_cert) is grpc.StatusCode.OK
        assert await _list(target, ClientTls(root_ca=pki.ca)) is grpc.StatusCode.UNAVAILABLE


def test_tls_files_that_are_not_pem_are_named(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("hello")
    with pytest.raises(AuthConfigError, match=r"cert.pem: the TLS certificate is not a PEM file"):
        load_server_tls(tmp_path / "cert.pem", tmp_path / "key.pem")
    with pytest.raises(AuthConfigError, match=r"nope.pem: cannot read the TLS certificate"):
        load_server_tls(tmp_path / "nope.pem", tmp_path / "key.pem")


# ------------------------------------------------------------------- exposure

def test_exposure_needs_tls_and_tokens_or_insecure(tmp_path: Path) -> None:
    tokens = parse_tokens(f'[tokens.a]\nsha256 = "{DIGEST}"\nrights = ["push"]', origin=tmp_path / "t.toml")
    tls = ServerTls(cert=b"c", key=b"k")
    mtls = ServerTls(cert=b"c", key=b"k", client_ca=b"ca")
    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert check_exposure(host, tls=None, tokens=None, insecure=False) is False
    for host in ("0.0.0.0", "", "::", "192.168.1.5", "example.com"):
        assert check_exposure(host, tls=tls, tokens=tokens, insecure=False) is False
        assert check_exposure(host, tls=mtls, tokens=None, insecure=False) is False
        assert check_exposure(host, tls=None, tokens=tokens, insecure=True) is True  # the caller warns
        for unprotected in ((None, None), (None, tokens), (tls, None)):
            with pytest.raises(UsageError, match="--insecure"):
                check_exposure(host, tls=unprotected[0], tokens=unprotected[1], insecure=False)


def test_serve_refuses_all_interfaces_without_insecure_in_one_line() -> None:
    result = subprocess.run([*CLI, "serve", "--host", "0.0.0.0", "--port", "0"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "non-loopback '0.0.0.0'" in result.stderr and "--insecure" in result.stderr


# --------------------------------------------------- done-when, through the CLI

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_with_auth_tokens_refuses_calls_without_a_token(tmp_path: Path) -> None:
    tokens = write_tokens(tmp_path / "tokens.toml", {"snap": ["snapshot"]})
    port = _free_port()
    server = subprocess.Popen([*CLI, "serve", "--http-port", "0", "--port", str(port),
                               "--auth-tokens", str(tmp_path / "tokens.toml"),
                               "--grace", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in (server.stdout.readline() if server.stdout else "")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.VisionStreamStub(channel).ListSessions(pb.ListSessionsRequest(), timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        base = [*CLI, "snapshot", str(SAMPLES / "still.jpg"), "--backend", "local", "--server", f"127.0.0.1:{port}"]
        ok = subprocess.run(base, capture_output=True, text=True, timeout=60,
                            env={"VISION_STREAM_TOKEN": tokens["snap"], "PATH": ""})
        assert ok.returncode == 0, ok.stderr
        denied = subprocess.run([*base, "--token", "vst_guessed"], capture_output=True, text=True, timeout=60)
        assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
        assert "vst_guessed" not in denied.stderr and denied.stderr.count("\n") == 1
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_anonymous_holds_every_right() -> None:
    assert all(ANONYMOUS.can(r) for r in ("push", "watch", "subscribe", "manage", "snapshot")) and ANONYMOUS.is_admin
