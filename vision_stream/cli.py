"""The ``vision-stream`` command: serve, replay, watch, snapshot, frames, emulate, models, token.

The environment is read here, once (API keys, URLs, VISION_STREAM_TOKEN), and nowhere deeper.
Errors print one line and exit non-zero; no tracebacks for expected failures.

Flags that set a configuration value default to None ("not given"): only the
given ones reach the configuration dataclasses, which hold every default
(help texts quote them from there). The benchmarks are not part of the
package: run them from a checkout with ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from . import __version__
from .backends.factory import BACKEND_NAMES, BackendOptions
from .config import DEFAULT_COMMENTARY_INTERVAL, DEFAULT_LANGUAGE, AudioPolicy, Limits, SamplingPolicy, SessionSettings
from .errors import UsageError, VisionStreamError
from .redact import Secret, scrub

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------- arguments

def _add_sampling(p: argparse.ArgumentParser) -> None:
    d = SamplingPolicy()
    g = p.add_argument_group("sampling")
    g.add_argument("--fps", type=float, help=f"base sampling rate, frames/s (default {d.fps:g})")
    g.add_argument("--max-fps", type=float,
                   help=f"cap incl. scene-change frames (default {d.max_fps:g}, or --fps when higher)")
    g.add_argument("--scene-threshold", type=float, help=f"scene change threshold 0..1 (default {d.scene_threshold:g})")
    g.add_argument("--max-side", type=int, help=f"JPEG longest side, pixels (default {d.max_side})")
    g.add_argument("--quality", type=int, help=f"JPEG quality 1..100 (default {d.jpeg_quality})")


def _add_analysis(p: argparse.ArgumentParser) -> None:
    d = BackendOptions()
    g = p.add_argument_group("analysis")
    g.add_argument("--backend", choices=BACKEND_NAMES, default="auto",
                   help="auto = live when an API key is set, else the offline analyzer")
    g.add_argument("--commentary-interval", type=float,
                   help=f"seconds between commentary prompts (default {DEFAULT_COMMENTARY_INTERVAL:g})")
    g.add_argument("--persona", default="", help="commentator instructions for model backends")
    g.add_argument("--language", help=f"commentary language, BCP-47 (default {DEFAULT_LANGUAGE})")
    g.add_argument("--live-url", default=None, help="Live API base URL (env VISION_STREAM_LIVE_URL)")
    g.add_argument("--rest-url", default=None, help="REST API base URL (env VISION_STREAM_REST_URL)")
    g.add_argument("--model", help=f"live model name (default {d.live_model})")
    g.add_argument("--snapshot-model", help=f"REST model (default {d.snapshot_model})")
    g.add_argument("--rest-rpm", type=float,
                   help=f"client-side REST rate limit, requests/minute (default {d.rest_requests_per_minute:g}, "
                        "the Flash free tier)")


def _add_limits(p: argparse.ArgumentParser) -> None:
    from .server.limits import ClientLimits

    d = ClientLimits()
    p.add_argument("--max-sessions", type=int,
                   help=f"sessions the server runs at once (default {Limits().max_sessions})")
    g = p.add_argument_group("limits per client (a token's name, or the IP address without --auth-tokens)")
    g.add_argument("--sessions-per-client", type=int,
                   help="sessions (and calls not yet configured) one client may hold "
                        f"(default {d.sessions_per_client})")
    g.add_argument("--idle-timeout", type=float,
                   help=f"seconds a Stream may send no media before it ends, DEADLINE_EXCEEDED "
                        f"(default {d.idle_timeout:g})")
    g.add_argument("--first-message-timeout", type=float,
                   help=f"seconds a Stream may take to send its config (default {d.first_message_timeout:g})")
    g.add_argument("--message-rate", type=float,
                   help=f"Stream messages per second per client (default {d.message_rate:g})")
    g.add_argument("--message-burst", type=int,
                   help=f"messages per client above the rate at once (default {d.message_burst})")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one event per line, protobuf JSON (camelCase)")


def _add_connection(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection to a server")
    g.add_argument("--token", default=None,
                   help="bearer token for a server with --auth-tokens (env VISION_STREAM_TOKEN, which "
                        "keeps it out of the process list)")
    g.add_argument("--tls", action="store_true", help="connect with TLS, trusting the system's root CAs")
    g.add_argument("--tls-ca", type=Path, default=None, metavar="FILE",
                   help="connect with TLS, trusting this PEM root CA (implies --tls)")
    g.add_argument("--tls-client-cert", type=Path, default=None, metavar="FILE",
                   help="PEM client certificate, for a server with --tls-client-ca (mTLS)")
    g.add_argument("--tls-client-key", type=Path, default=None, metavar="FILE", help="its PEM private key")


TOKEN_HELP = """\
Bearer tokens for `serve --auth-tokens FILE`. `token new NAME --rights R,...`
prints a new random token once (give it to the client: --token or
VISION_STREAM_TOKEN) and the lines to add to the tokens file, which keeps only
its SHA-256:

    [tokens.alice]
    sha256 = "<64 hex digits>"
    rights = ["push", "subscribe", "watch"]

Rights: push (Stream), watch (Watch), subscribe (Subscribe, ListSessions),
manage (StopSession of one's own sessions), snapshot (AnalyzeSnapshot),
admin (everything, every session). A session belongs to the token that
created it: others neither see it nor stop it, unless admin. Health and
reflection need no token.
"""


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the gRPC server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--media-root", type=Path, default=None, help="directory Watch may read files from")
    p.add_argument("--allow-remote", default="",
                   help="comma-separated URL schemes Watch may open (e.g. rtsp,rtsps,http,https)")
    p.add_argument("--allow-host", action="append", default=[], help="restrict remote URLs to these hosts")
    _add_limits(p)
    p.add_argument("--config", type=Path, default=None, metavar="CAMERAS_TOML",
                   help="cameras file: named sessions started at boot, run with no client "
                        "(format: vision_stream/cameras.py)")
    p.add_argument("--grace", type=float, default=10.0, help="shutdown grace period, seconds")
    g = p.add_argument_group("security (see `vision-stream token --help`)")
    g.add_argument("--auth-tokens", type=Path, default=None, metavar="TOKENS_TOML",
                   help="require a bearer token with the right for every call (health and reflection stay "
                        "open); without it every client has every right")
    g.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="PEM certificate chain: serve TLS")
    g.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="PEM private key of --tls-cert")
    g.add_argument("--tls-client-ca", type=Path, default=None, metavar="FILE",
                   help="PEM CA: require client certificates signed by it (mTLS)")
    g.add_argument("--insecure", action="store_true",
                   help="allow a non-loopback --host without TLS plus tokens (or mTLS); logs a warning")
    _add_sampling(p)
    _add_analysis(p)


def _add_token(sub: Any) -> None:
    p = sub.add_parser("token", help="make bearer tokens for serve --auth-tokens", description=TOKEN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    token_sub = p.add_subparsers(dest="token_command", required=True)
    q = token_sub.add_parser("new", help="print a new token and its tokens-file lines", description=TOKEN_HELP,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("name", help="the token's name (1-64 letters, digits, '.', '_', '-'): its sessions' owner")
    q.add_argument("--rights", required=True,
                   help="comma-separated, among push, watch, subscribe, manage, snapshot, admin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vision-stream", description="Real-time multimodal analysis of video.")
    parser.add_argument("--version", action="version", version=f"vision-stream {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="run a file (or camera URL) through the pipeline and print events")
    p.add_argument("source", help="a media file, or a camera URL")
    p.add_argument("--fast", action="store_true", help="as fast as possible (same sampling decisions)")
    p.add_argument("--loop", action="store_true", help="loop a file until Ctrl-C")
    p.add_argument("--server", default=None, help="HOST:PORT: push the file through a server's Stream RPC")
    _add_sampling(p)
    _add_analysis(p)
    _add_output(p)
    _add_connection(p)

    _add_serve(sub)

    p = sub.add_parser("watch", help="ask a server to pull a source (Watch RPC) and print its events")
    p.add_argument("source", help="path under the server's media root, or a URL it allows")
    p.add_argument("--server", required=True, help="HOST:PORT")
    p.add_argument("--fast", action="store_true")
    p.add_argument("--detach", action="store_true", help="leave the session running after this command ends")
    p.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    p.add_argument("--commentary-interval", type=float, default=0.0)
    _add_output(p)
    _add_connection(p)

    p = sub.add_parser("snapshot", help="analyse one image")
    p.add_argument("image", type=Path)
    p.add_argument("--prompt", default="", help="question about the image")
    p.add_argument("--server", default=None, help="HOST:PORT: use a server's AnalyzeSnapshot RPC")
    _add_analysis(p)
    _add_output(p)
    _add_connection(p)

    p = sub.add_parser("frames", help="write exactly the JPEGs that would be sent to the model")
    p.add_argument("source")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    _add_sampling(p)

    p = sub.add_parser("emulate", help="run the Gemini Live + REST emulator on loopback")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--fault", action="append", default=[],
                   help="knob words (repeatable): Live half e.g. 'refuse=503' 'fault=drop@5'; REST half (on "
                        "port+1) with a rest. prefix, e.g. 'rest.fault=429x3 rest.retry_delay=2'")

    _add_token(sub)

    p = sub.add_parser("models", help="list the models the API key can use, and which speak Live")
    p.add_argument("--live-url", default=None, help="Live API base URL (env VISION_STREAM_LIVE_URL)")
    p.add_argument("--rest-url", default=None, help="REST API base URL (env VISION_STREAM_REST_URL)")
    p.add_argument("--all", action="store_true", help="also models that neither generate content nor speak Live")
    return parser


# ------------------------------------------------------------ shared values

def given(**values: Any) -> dict[str, Any]:
    """The values a user gave (None = not given), for a dataclass that holds the defaults."""
    return {name: value for name, value in values.items() if value is not None}


def sampling_from_args(args: argparse.Namespace) -> SamplingPolicy:
    return SamplingPolicy().updated(fps=args.fps, max_fps=args.max_fps, scene_threshold=args.scene_threshold,
                                    max_side=args.max_side, jpeg_quality=args.quality)


def backend_options_from(args: argparse.Namespace, env: os._Environ[str] | dict[str, str]) -> BackendOptions:
    key = env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or ""
    # An empty --model / --snapshot-model, or --rest-rpm 0, means "not given".
    return BackendOptions(
        api_key=Secret(key) if key else None,
        live_url=getattr(args, "live_url", None) or env.get("VISION_STREAM_LIVE_URL") or None,
        rest_url=getattr(args, "rest_url", None) or env.get("VISION_STREAM_REST_URL") or None,
        **given(live_model=getattr(args, "model", None) or None,
                snapshot_model=getattr(args, "snapshot_model", None) or None,
                rest_requests_per_minute=getattr(args, "rest_rpm", None) or None),
    )


def session_settings_from(args: argparse.Namespace, session_id: str, source: str) -> SessionSettings:
    """The settings of a session the CLI runs itself (``replay`` without ``--server``)."""
    return SessionSettings(session_id=session_id, source_description=source, persona=args.persona,
                           model=args.model or "",
                           **given(commentary_interval=args.commentary_interval, language=args.language))


def connection_from(args: argparse.Namespace, env: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    """``token=`` and ``tls=`` for vision_stream.client, from the flags and VISION_STREAM_TOKEN."""
    from .client import ClientTls

    raw = getattr(args, "token", None) or env.get("VISION_STREAM_TOKEN") or ""
    ca, cert, key = (getattr(args, name, None) for name in ("tls_ca", "tls_client_cert", "tls_client_key"))
    tls: bool | ClientTls = getattr(args, "tls", False)
    if ca or cert or key:
        tls = ClientTls(root_ca=ca, cert=cert, key=key)
    return {"token": Secret(raw) if raw else None, "tls": tls}


class Printer:
    """Prints events: every event as JSON, or the readable view.

    The readable view shows a turn's final commentary only: partial chunks
    repeat the turn so far and would flood a terminal (``--json`` has them).
    """

    def __init__(self, as_json: bool) -> None:
        from .render import event_json, event_line

        self._as_json = as_json
        self._format: Callable[..., str] = event_json if as_json else event_line

    def __call__(self, event: Any) -> None:
        if not self._as_json and event.HasField("commentary") and not event.commentary.final:
            return
        print(self._format(event), flush=True)


# ----------------------------------------------------------------- commands

async def cmd_replay(args: argparse.Namespace, options: BackendOptions) -> int:
    if args.server:
        return await _replay_via_server(args)
    from .proto import event_to_proto
    from .session_factory import open_session

    # The server's path (session_factory), run here without a registry.
    session = await open_session(
        args.source, settings=session_settings_from(args, "replay", _shown(args.source)), backend=args.backend,
        options=options, sampling=sampling_from_args(args), limits=Limits(), paced=not args.fast,
        lossless=args.fast, audio=AudioPolicy(), loop=args.loop,
    )
    printer = Printer(args.json)
    with _on_interrupt(lambda: session.stop("interrupted")):
        runner = asyncio.create_task(session.run())
        async for event in session.log.follow():
            printer(event_to_proto(event))
        await runner
    return EXIT_INTERRUPTED if session.stop_reason == "interrupted" else _exit_for(session)


def _exit_for(session: object) -> int:
    from .pipeline import Session, SessionState

    assert isinstance(session, Session)
    return EXIT_ERROR if session.state is SessionState.FAILED else 0


async def _replay_via_server(args: argparse.Namespace) -> int:
    from .client import push_file

    printer = Printer(args.json)
    sampling = sampling_from_args(args)
    # No --commentary-interval: 0, the server's default.
    async for event in push_file(args.server, Path(args.source), sampling=sampling, backend=args.backend,
                                 commentary_interval=args.commentary_interval or 0.0, fast=args.fast,
                                 **connection_from(args, os.environ)):
        printer(event)
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    from .client import watch

    printer = Printer(args.json)
    async for event in watch(args.server, args.source, fast=args.fast, detach=args.detach,
                             backend=args.backend, commentary_interval=args.commentary_interval,
                             **connection_from(args, os.environ)):
        printer(event)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a new token (stderr, shown once) and its tokens-file lines (stdout: ``>> tokens.toml``)."""
    from .server.auth import ANONYMOUS, NAME, check_rights, new_token, token_digest, token_toml

    if not NAME.fullmatch(args.name) or args.name == ANONYMOUS.name:
        raise UsageError(f"token name {args.name[:80]!r}: 1-64 letters, digits, '.', '_' or '-' (not 'anonymous')")
    rights = check_rights([r.strip() for r in args.rights.split(",") if r.strip()], "--rights")
    token = new_token()
    print(f"token for {args.name} (shown once; give it to the client as VISION_STREAM_TOKEN or --token):\n"
          f"{token}", file=sys.stderr, flush=True)
    print(token_toml(args.name, token_digest(token), rights), end="", flush=True)
    return 0


async def cmd_snapshot(args: argparse.Namespace, options: BackendOptions) -> int:
    if not args.image.is_file():
        raise UsageError(f"no such image: {args.image}")
    data = args.image.read_bytes()
    if args.server:
        from .client import snapshot

        response = await snapshot(args.server, data, prompt=args.prompt, backend=args.backend,
                                  **connection_from(args, os.environ))
    else:
        from .proto import detection_to_proto
        from .snapshot import analyze_snapshot
        from .v1 import vision_stream_pb2 as pb

        result = await analyze_snapshot(data, prompt=args.prompt, backend=args.backend, options=options,
                                        sampling=SamplingPolicy(), limits=Limits())
        response = pb.SnapshotResponse(text=result.text, backend=result.backend, model=result.model,
                                       detections=[detection_to_proto(d) for d in result.detections])
    if args.json:
        from google.protobuf import json_format

        print(json_format.MessageToJson(response, indent=None))
    else:
        print(response.text)
        for d in response.detections:
            print(f"- {d.label} [{d.severity}, {d.confidence:.2f}] {d.description}")
    return 0


async def cmd_frames(args: argparse.Namespace) -> int:
    from .media.frames_export import export_frames

    count = await asyncio.to_thread(export_frames, args.source, args.out, sampling_from_args(args))
    print(f"wrote {count} JPEG frames to {args.out}")
    return 0


async def cmd_serve(args: argparse.Namespace, options: BackendOptions) -> int:
    from .server.access import SourceAccess
    from .server.app import serve_forever, start_server
    from .server.auth import load_server_tls, load_tokens
    from .server.limits import ClientLimits
    from .server.service import ServiceConfig

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    tokens = load_tokens(args.auth_tokens) if args.auth_tokens is not None else None
    tls = load_server_tls(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert is not None else None
    schemes = frozenset(s.strip().lower() for s in args.allow_remote.split(",") if s.strip())
    config = ServiceConfig(
        access=SourceAccess(media_root=args.media_root, allowed_schemes=schemes,
                            allowed_hosts=frozenset(h.lower() for h in args.allow_host)),
        sampling=sampling_from_args(args),
        limits=Limits(**given(max_sessions=args.max_sessions)),
        clients=ClientLimits(**given(sessions_per_client=args.sessions_per_client, idle_timeout=args.idle_timeout,
                                     first_message_timeout=args.first_message_timeout,
                                     message_rate=args.message_rate, message_burst=args.message_burst)),
        backends=options,
        **given(commentary_interval=args.commentary_interval),
    )
    from .cameras import load_cameras

    cameras = load_cameras(args.config, env=os.environ) if args.config is not None else ()
    running = await start_server(config, host=args.host, port=args.port, cameras=cameras, tokens=tokens, tls=tls,
                                 insecure=args.insecure)
    for camera in cameras:
        print(f"camera {camera.name}: {camera.description}", flush=True)
    security = [("mTLS" if tls.mutual else "TLS") if tls else "", f"{len(tokens.names)} tokens" if tokens else ""]
    shown = f" ({', '.join(w for w in security if w)})" if any(security) else ""
    print(f"vision-stream serving on {args.host}:{running.port}{shown}", flush=True)
    await serve_forever(running, grace=args.grace)
    return 0


async def cmd_models(args: argparse.Namespace, options: BackendOptions) -> int:
    """``GET /v1beta/models``: which models speak Live (bidiGenerateContent) and which REST."""
    from .backends.gemini_api import http_base
    from .backends.gemini_rest import RestSettings, list_models

    if not options.api_key:
        raise UsageError("listing models needs an API key (set GEMINI_API_KEY or GOOGLE_API_KEY)")
    # The listing lives on the REST host (Google serves both APIs from one host).
    url = options.rest_url or options.live_url
    settings = RestSettings(base_url=http_base(url) if url else None, api_key=options.api_key.reveal())
    for model in await list_models(settings):
        methods = set(model.supported_generation_methods)
        kind = "live" if model.live else "rest" if "generateContent" in methods else "other"
        if kind == "other" and not args.all:
            continue
        marks = []
        if model.model_id == options.live_model:
            marks.append("--model")
        if model.model_id == options.snapshot_model:
            marks.append("--snapshot-model")
        shown = f"  ({', '.join(marks)})" if marks else ""
        print(f"{kind:5} {model.model_id}{shown}", flush=True)
    return 0


async def cmd_emulate(args: argparse.Namespace) -> int:
    from .testing.emulator import serve_from_cli

    await serve_from_cli(args.host, args.port, args.fault)
    return 0


# --------------------------------------------------------------------- main

@contextlib.contextmanager
def _on_interrupt(callback: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _shown(source: str) -> str:
    from .redact import redact_url

    return redact_url(source) if "://" in source else source


async def _dispatch(args: argparse.Namespace) -> int:
    options = backend_options_from(args, os.environ)
    if args.command == "replay":
        return await cmd_replay(args, options)
    if args.command == "serve":
        return await cmd_serve(args, options)
    if args.command == "watch":
        return await cmd_watch(args)
    if args.command == "snapshot":
        return await cmd_snapshot(args, options)
    if args.command == "frames":
        return await cmd_frames(args)
    if args.command == "emulate":
        return await cmd_emulate(args)
    if args.command == "token":
        return cmd_token(args)
    if args.command == "models":
        return await cmd_models(args, options)
    raise UsageError(f"unknown command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    secrets = [os.environ.get("GEMINI_API_KEY", ""), os.environ.get("GOOGLE_API_KEY", ""),
               os.environ.get("VISION_STREAM_TOKEN", ""), getattr(args, "token", None) or ""]
    from .redact import install_log_redaction

    install_log_redaction(*secrets)  # every log line, httpx's and websockets' own included
    try:
        return asyncio.run(_dispatch(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except VisionStreamError as exc:
        print(f"vision-stream: error: {scrub(exc.message, *secrets)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    except grpc.aio.AioRpcError as exc:
        print(f"vision-stream: error: {exc.code().name}: {scrub(exc.details() or '', *secrets)}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # an OSError: first, or it is never reached (`vision-stream ... | head`)
        return 0
    except OSError as exc:
        print(f"vision-stream: error: {scrub(str(exc), *secrets)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

