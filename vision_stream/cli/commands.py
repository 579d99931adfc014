"""One function per ``vision-stream`` command, and the table ``main`` dispatches on.

Every command is ``async (args, options) -> exit code``: ``options`` are the
backend options read from the flags and the environment (commands that run no
model ignore them). Expected failures raise :class:`~vision_stream.errors.VisionStreamError`
and ``main`` prints them as one line. Only ``serve`` reaches into the server
package; the benchmarks are not part of the package (``python -m bench`` in a
checkout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends.factory import BackendOptions
from ..config import AudioPolicy, Limits, SamplingPolicy
from ..errors import SessionError, UsageError
from ..redact import redact_url
from ..v1 import vision_stream_pb2 as pb
from . import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE  # defined in the package: its import stays light
from .args import connection_from, given, model_settings_from, sampling_from_args, session_settings_from
from .doctor import cmd_doctor
from .evidence import cmd_clip
from .render import Printer, print_snapshot, progress_for, status_line_for
from .sessions import cmd_follow, cmd_sessions, cmd_stop

if TYPE_CHECKING:
    from ..fleet import FleetOptions
    from ..server.service import ServiceConfig

__all__ = ["COMMANDS", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE", "Command"]

Command = Callable[[argparse.Namespace, BackendOptions], Awaitable[int]]


async def cmd_replay(args: argparse.Namespace, options: BackendOptions) -> int:
    """Run a file or camera through the pipeline here (the server's path, without a registry)."""
    if args.server:
        return await _replay_via_server(args)
    from ..proto import event_to_proto
    from ..session_factory import open_session

    _warn_ignored_model_flags(args, options)
    session = await open_session(
        args.source, settings=session_settings_from(args, "replay", _shown(args.source)), backend=args.backend,
        options=options, sampling=sampling_from_args(args), limits=Limits(), paced=not args.fast,
        lossless=args.fast, audio=AudioPolicy(), loop=args.loop,
    )
    printer = Printer(args.json, progress=progress_for(args.source, loop=args.loop))
    with _on_interrupt(lambda: session.stop("interrupted")):
        runner = asyncio.create_task(session.run())
        ended = await _print_events((event_to_proto(e) async for e in session.log.follow()), printer)
        await runner
    if session.stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    return session_exit_code(ended, _shown(args.source))


async def _replay_via_server(args: argparse.Namespace) -> int:
    from ..client import push_file

    printer = Printer(args.json, progress=progress_for(args.source))
    sampling = sampling_from_args(args)
    # No --commentary-interval: 0, the server's default.
    # --persona and --language travel in the SessionConfig (the server's backend decides what they do).
    events = push_file(args.server, Path(args.source), sampling=sampling, backend=args.backend,
                       commentary_interval=args.commentary_interval or 0.0, fast=args.fast,
                       persona=args.persona, language=args.language or "",
                       **model_settings_from(args), **connection_from(args, os.environ))
    return session_exit_code(await _print_events(events, printer), args.source)


async def cmd_watch(args: argparse.Namespace, options: BackendOptions) -> int:
    """Ask a server to pull a source (the server's backend options apply, not ours)."""
    from ..client import watch
    from .sessions import follow_camera

    if (code := await follow_camera(args)) is not None:  # a configured camera's name: it already runs
        return code
    printer = Printer(args.json, progress=status_line_for())
    events = watch(args.server, args.source, fast=args.fast, detach=args.detach,
                   backend=args.backend, commentary_interval=args.commentary_interval,
                   **model_settings_from(args), **connection_from(args, os.environ))
    return session_exit_code(await _print_events(events, printer), args.source)


async def cmd_token(args: argparse.Namespace, options: BackendOptions) -> int:
    """Print a new token (stderr, shown once) and its tokens-file lines (stdout: ``>> tokens.toml``)."""
    from ..server.auth import ANONYMOUS, NAME, check_rights, new_token, token_digest, token_toml

    if not NAME.fullmatch(args.name) or args.name == ANONYMOUS.name:
        raise UsageError(f"token name {args.name[:80]!r}: 1-64 letters, digits, '.', '_' or '-' (not 'anonymous')")
    rights = check_rights([r.strip() for r in args.rights.split(",") if r.strip()], "--rights")
    token = new_token()
    print(f"token for {args.name} (shown once; give it to the client as VISION_STREAM_TOKEN or --token):\n"
          f"{token}", file=sys.stderr, flush=True)
    print(token_toml(args.name, token_digest(token), rights), end="", flush=True)
    return 0


async def cmd_snapshot(args: argparse.Namespace, options: BackendOptions) -> int:
    """Analyse one image here, or with a server's ``AnalyzeSnapshot``; both print the RPC's answer."""
    from ..proto import snapshot_to_proto

    if not args.image.is_file():
        raise UsageError(f"no such image: {args.image}")
    if args.persona or args.language:  # AnalyzeSnapshot has neither: say so rather than ignore them
        print("vision-stream: warning: --persona and --language are ignored by snapshot (a question goes in "
              "--prompt)", file=sys.stderr, flush=True)
    data = args.image.read_bytes()
    if args.server:
        from ..client import snapshot

        response = await snapshot(args.server, data, prompt=args.prompt, backend=args.backend,
                                  **connection_from(args, os.environ))
    else:
        from ..snapshot import analyze_snapshot

        response = snapshot_to_proto(await analyze_snapshot(
            data, prompt=args.prompt, backend=args.backend, options=options, sampling=SamplingPolicy(),
            limits=Limits()))
    print_snapshot(response, as_json=args.json)
    return 0


async def cmd_frames(args: argparse.Namespace, options: BackendOptions) -> int:
    """Write the JPEGs a model would get (decoding and encoding off the event loop).

    Ctrl-C closes the source (a camera's blocked read included) and waits for
    the worker thread: asyncio.run would otherwise cancel only the await and
    then wait for that thread forever, still writing, at its executor shutdown.
    """
    from ..media.frames_export import FrameExport
    from .evidence import check_session_frames_args, cmd_session_frames

    check_session_frames_args(args)
    if args.session is not None:  # a server session's frames (GetFrames): cli/evidence.py
        return await cmd_session_frames(args, options)
    export = FrameExport(args.source, args.out, sampling_from_args(args), overwrite=args.overwrite)
    with _on_interrupt(export.close):
        count = await asyncio.to_thread(export.run)
    if export.interrupted:
        print(f"interrupted: wrote {count} JPEG frames to {args.out}")
        return EXIT_INTERRUPTED
    print(f"wrote {count} JPEG frames to {args.out}")
    return 0


async def cmd_serve(args: argparse.Namespace, options: BackendOptions) -> int:
    """Run the gRPC server (and the configured cameras) until SIGINT/SIGTERM."""
    from ..server.app import serve_forever, start_server
    from ..server.auth import load_server_tls, load_tokens
    from ..server.cameras import load_cameras
    from ..sinks.config import load_sinks

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    if args.media_root is not None and not args.media_root.is_dir():
        # Checked here, at start-up: the server would start and every Watch would then fail.
        what = "is not a directory" if args.media_root.exists() else "does not exist"
        raise UsageError(f"--media-root {args.media_root} {what}: give the directory holding the clips Watch "
                         "may read")
    tokens = load_tokens(args.auth_tokens) if args.auth_tokens is not None else None
    tls = load_server_tls(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert is not None else None
    config = _service_config(args, options)
    cameras = load_cameras(args.config, env=os.environ) if args.config is not None else ()
    sinks = load_sinks(args.config, env=os.environ) if args.config is not None else ()  # [[sinks]]
    stop = asyncio.Event()
    # SIGINT/SIGTERM set ``stop`` from before start-up on: a Ctrl-C while the server
    # starts shuts it down like one later. asyncio.run's own SIGINT handler cancels
    # the main task, and the cancellation lands at the next await: inside grpc.aio's
    # server.start(), which then cannot be stopped ("invalid state", and __del__
    # after the loop closed). So a Ctrl-C from before (the imports above) lands at
    # the sleep(0) instead, before any server exists: exit 130, quietly.
    with _on_interrupt(stop.set):
        await asyncio.sleep(0)
        running = await start_server(config, host=args.host, port=args.port, cameras=cameras, tokens=tokens,
                                     tls=tls, insecure=args.insecure, sinks=sinks, fleet=_fleet_options(args),
                                     http_port=args.http_port or None)  # --http-port 0: no HTTP side
        if running.fleet is not None:
            print(f"fleet replica {running.fleet.replica}: {len(cameras)} cameras shared through {args.events}",
                  flush=True)
        for camera in cameras if running.fleet is None else ():
            print(f"camera {camera.name}: {camera.description}", flush=True)
        security = [("mTLS" if tls.mutual else "TLS") if tls else "", f"{len(tokens.names)} tokens" if tokens else ""]
        shown = f" ({', '.join(w for w in security if w)})" if any(security) else ""
        print(f"vision-stream serving on {args.host}:{running.port}{shown}", flush=True)
        if running.http_port is not None:
            scheme = "https" if tls else "http"
            print(f"vision-stream page and HTTP API on {scheme}://{args.host}:{running.http_port}/", flush=True)
        await serve_forever(running, grace=args.grace, stop=stop)
    return 0


def _fleet_options(args: argparse.Namespace) -> FleetOptions | None:
    """With ``--events nats://`` the server is one replica of a fleet (vision_stream.fleet)."""
    if not args.events.startswith("nats://"):
        return None
    from ..fleet import FleetOptions

    return FleetOptions(url=args.events, replica_id=args.replica_id, ttl=args.lease_ttl,
                        live_sessions=args.fleet_live_sessions)


def _service_config(args: argparse.Namespace, options: BackendOptions) -> ServiceConfig:
    """The server's configuration from ``serve``'s flags (unset flags keep the dataclass defaults)."""
    from ..server.access import SourceAccess
    from ..server.limits import ClientLimits
    from ..server.service import ServiceConfig
    from ..store import open_store

    schemes = frozenset(s.strip().lower() for s in args.allow_remote.split(",") if s.strip())
    return ServiceConfig(
        access=SourceAccess(media_root=args.media_root, allowed_schemes=schemes,
                            allowed_hosts=frozenset(h.lower() for h in args.allow_host)),
        sampling=sampling_from_args(args),
        limits=Limits(**given(max_sessions=args.max_sessions)).with_evidence(minutes=args.evidence_minutes,
                                                                             megabytes=args.evidence_mb),
        clients=ClientLimits(**given(sessions_per_client=args.sessions_per_client, idle_timeout=args.idle_timeout,
                                     first_message_timeout=args.first_message_timeout,
                                     message_rate=args.message_rate, message_burst=args.message_burst)),
        backends=options,
        store=open_store(args.events, data_dir=args.data_dir),  # opened by start_server
        **given(commentary_interval=args.commentary_interval),
    )


async def cmd_models(args: argparse.Namespace, options: BackendOptions) -> int:
    """``GET /{api_version}/models``: which models speak Live (bidiGenerateContent) and which REST."""
    from ..backends.gemini_api import http_base
    from ..backends.gemini_rest import RestSettings, list_models

    if not options.api_key:
        raise UsageError("listing models needs an API key (set GEMINI_API_KEY or GOOGLE_API_KEY)")
    # The listing lives on the REST host (Google serves both APIs from one host).
    url = options.rest_url or options.live_url
    settings = RestSettings(base_url=http_base(url) if url else None, api_key=options.api_key.reveal(),
                            api_version=options.api_version)
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


async def cmd_emulate(args: argparse.Namespace, options: BackendOptions) -> int:
    """Serve the Gemini Live + REST emulator until Ctrl-C (the API key is not needed)."""
    from ..testing.emulator import serve_from_cli

    if not args.verbose:  # connections and injected faults at the default level (INFO, stderr); -v adds more
        logging.getLogger("vision_stream.testing").setLevel(logging.INFO)
        logging.getLogger("vision_stream.testing.live_emulator.ws").setLevel(logging.WARNING)  # websockets' own
    await serve_from_cli(args.host, args.port, args.fault, tls=_emulator_tls(args.tls_cert, args.tls_key))
    return 0


def _emulator_tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """The emulator's TLS context from ``--tls-cert``/``--tls-key`` (both or neither)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise UsageError("emulate: --tls-cert and --tls-key go together")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"emulate: cannot load --tls-cert/--tls-key: {exc.strerror or exc}") from None
    return context


COMMANDS: dict[str, Command] = {
    "replay": cmd_replay,
    "serve": cmd_serve,
    "watch": cmd_watch,
    "snapshot": cmd_snapshot,
    "frames": cmd_frames,
    "emulate": cmd_emulate,
    "token": cmd_token,
    "models": cmd_models,
    "sessions": cmd_sessions,
    "follow": cmd_follow,
    "stop": cmd_stop,
    "clip": cmd_clip,
    "doctor": cmd_doctor,
}


# ------------------------------------------------------------------- helpers

async def _print_events(events: AsyncIterator[pb.Event], printer: Printer) -> pb.SessionEnded | None:
    """Print every event; the session's ``session_ended`` (None when the stream ended without one)."""
    ended: pb.SessionEnded | None = None
    async for event in events:
        printer(event)
        if event.HasField("session_ended"):
            ended = event.session_ended
    return ended


def session_exit_code(ended: pb.SessionEnded | None, source: str) -> int:
    """0 for a session that ended normally; a failed one raises, so ``main`` prints one line and exits 1.

    Its error event is on stdout with the rest; the line on stderr is for
    whoever runs the command from a script. A source that ended with no
    video frame at all (an audio-only file, raw PCM, a text file FFmpeg
    misread) is a failure too: there was nothing to look at.
    """
    if ended is None:  # --detach, or a stream cut short: nothing to judge
        return 0
    if ended.reason.startswith("failed"):
        raise SessionError(f"{source[:200]}: session failed: {ended.reason.removeprefix('failed').lstrip(': ')}")
    if ended.reason == "end_of_input" and ended.totals.frames_in == 0:
        raise SessionError(f"{source[:200]}: no video stream (no frame decoded): vision-stream analyses video; "
                           "give a video file or camera")
    return 0


def _warn_ignored_model_flags(args: argparse.Namespace, options: BackendOptions) -> None:
    """One line on stderr when --persona/--language are given but the offline analyzer runs:
    it writes fixed English phrases, so the flags would be ignored in silence."""
    from ..backends.factory import resolve_name

    given_flags = [flag for flag, value in (("--persona", args.persona), ("--language", args.language)) if value]
    if given_flags and resolve_name(args.backend, options) == "local":
        print(f"vision-stream: warning: {' and '.join(given_flags)} ignored: the offline analyzer (no API key, "
              "or --backend local) writes plain English; they apply to the model backends", file=sys.stderr,
              flush=True)


@contextlib.contextmanager
def _on_interrupt(callback: Callable[[], None]) -> Iterator[None]:
    """Run ``callback`` on SIGINT/SIGTERM instead of raising KeyboardInterrupt (the session ends cleanly)."""
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
    return redact_url(source) if "://" in source else source
