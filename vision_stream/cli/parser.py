"""The ``vision-stream`` argument parser: every command, flag and help text.

Flags that set a configuration value default to None ("not given"): only the
given ones reach the configuration dataclasses (:mod:`.args`), which hold every
default, and the help texts quote them from there.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..backends.factory import BACKEND_NAMES, BackendOptions
from ..backends.gemini_api import API_VERSIONS
from ..backends.gemini_live.settings import LiveSettings, LiveTimeouts
from ..config import DEFAULT_COMMENTARY_INTERVAL, DEFAULT_LANGUAGE, Limits, SamplingPolicy
from .render import LEGEND

__all__ = ["build_parser"]


def _add_sampling(p: argparse.ArgumentParser) -> None:
    d = SamplingPolicy()
    g = p.add_argument_group("sampling")
    g.add_argument("--fps", type=float, help=f"base sampling rate, frames/s (default {d.fps:g})")
    g.add_argument("--max-fps", type=float,
                   help=f"cap incl. scene-change frames (default {d.max_fps:g}, or --fps when higher)")
    g.add_argument("--scene-threshold", type=float, help=f"scene change threshold 0..1 (default {d.scene_threshold:g})")
    g.add_argument("--max-side", type=int, help=f"JPEG longest side, pixels (default {d.max_side})")
    g.add_argument("--quality", type=int, help=f"JPEG quality 1..100 (default {d.jpeg_quality})")


def _add_analysis(p: argparse.ArgumentParser, backends: tuple[str, ...] = BACKEND_NAMES) -> None:
    d = BackendOptions()
    g = p.add_argument_group("analysis")
    g.add_argument("--backend", choices=backends, default="auto",
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
    g.add_argument("--stall-timeout", type=float, metavar="SECONDS",
                   help=f"seconds Live may leave a prompt unanswered before it counts as stalled: a retryable "
                        f"error event, then a reconnect that asks again (default {LiveTimeouts().response:g})")
    g.add_argument("--keepalive", type=float, metavar="SECONDS",
                   help="seconds of quiet after which Live sends a keepalive (audioStreamEnd: no turn, no tokens) "
                        "so proxies do not reap the connection as idle; 0 turns it off "
                        f"(default {LiveSettings().keepalive_interval:g})")
    _add_api_version(g)
    _add_model_settings(g)


def _add_verify(p: argparse.ArgumentParser) -> None:
    """The second opinion's model (conditions/verify.py). Where sessions run: serve and a local
    replay; ``watch`` uses its server's (SessionConfig has no field for it)."""
    p.add_argument("--verify-model", metavar="MODEL",
                   help="REST model asked for a second opinion on verify=1 conditions (default: --snapshot-model)")


def _add_model_settings(g: Any) -> None:
    """Per-session speech and tools (SessionConfig voice, media_resolution, tools), checked
    against the model's capability table when the session opens."""
    g.add_argument("--voice", help="prebuilt voice of the model's speech, e.g. Kore (default: the model's)")
    g.add_argument("--media-resolution", choices=("low", "medium", "high"),
                   help="tokens per frame: low about 64, medium about 256 (default: the backend's, Live low)")
    g.add_argument("--tool", action="append", dest="tools", metavar="NAME",
                   help="a built-in tool for the model, e.g. google_search (repeatable)")


def _add_budget(p: argparse.ArgumentParser) -> None:
    """Per-session budget (pipeline/budget.py): the governor lowers fps, raises the scene
    threshold and lengthens the cadence to stay under it, one ``budget`` event per change."""
    g = p.add_argument_group("budget")
    g.add_argument("--max-cost-per-hour", type=float, metavar="USD",
                   help="estimated US dollars per hour of media the session may spend (default: no limit)")
    g.add_argument("--max-tokens-per-hour", type=int, metavar="N",
                   help="tokens per hour of media the session may use (default: no limit)")
    # Watch conditions (vision_stream.conditions): with the budget since both bound a session's run.
    p.add_argument("--condition", action="append", dest="conditions", metavar="TEXT",
                   help="alert when this holds, in words (repeatable, at most 16); optional leading "
                        "'id=NAME;cooldown=SECONDS;min_confidence=0.5;max_triggers=N;notify_resolved=1;' "
                        "items, e.g. \"id=left;cooldown=30;a vehicle in the left half\"")


def _add_prices(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prices", type=Path, metavar="FILE",
                   help="a prices.toml merged over the shipped price table, for estimated costs (same layout)")


def _add_api_version(g: Any) -> None:
    g.add_argument("--api-version", choices=API_VERSIONS,
                   help=f"Gemini API version for Live, REST and the models list (default "
                        f"{BackendOptions().api_version}, the official SDK's)")


def _add_limits(p: argparse.ArgumentParser) -> None:
    from ..server.limits import ClientLimits

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


DEFAULT_SERVER = "127.0.0.1:50051"  # serve's default --host and --port


def _add_session_commands(sub: Any) -> None:
    """``sessions``, ``follow``, ``stop``: a server's running sessions (vision_stream/cli/sessions.py)."""
    server_help = f"HOST:PORT (default {DEFAULT_SERVER}, serve's default)"
    p = sub.add_parser("sessions", help="list a server's sessions: id, source, backend, state, frames, age")
    p.add_argument("--server", default=DEFAULT_SERVER, help=server_help)
    _add_connection(p)
    p = sub.add_parser("follow", help="print a running session's events (Subscribe)", epilog=LEGEND,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", metavar="ID|CAMERA",
                   help="a session id (a configured camera's is its name), or the source of one running session")
    p.add_argument("--after", type=int, default=0, metavar="SEQ",
                   help="only events after this seq (resume where a view stopped; default 0: all retained)")
    p.add_argument("--server", default=DEFAULT_SERVER, help=server_help)
    _add_output(p)
    _add_connection(p)
    p = sub.add_parser("stop", help="stop a session (StopSession) and print its totals")
    p.add_argument("session", metavar="ID", help="the session id (a configured camera's is its name)")
    p.add_argument("--server", default=DEFAULT_SERVER, help=server_help)
    _add_connection(p)


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the gRPC server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=50051, help="TCP port, 0 for any free one (default 50051)")
    p.add_argument("--http-port", type=port_number, default=8080,
                   help="HTTP side on the same --host: JSON API, SSE, WebSocket, the page at /, /metrics "
                        "(default 8080; 0 disables it); same TLS and tokens as gRPC")
    p.add_argument("--media-root", type=Path, default=None, help="directory Watch may read files from")
    p.add_argument("--allow-remote", default="",
                   help="comma-separated URL schemes Watch may open (e.g. rtsp,rtsps,http,https)")
    p.add_argument("--allow-host", action="append", default=[], help="restrict remote URLs to these hosts")
    _add_limits(p)
    g = p.add_argument_group("evidence each session keeps (GetFrames, ExportClip; a camera's evidence_* keys win)")
    g.add_argument("--evidence-minutes", type=float, metavar="MINUTES",
                   help="media minutes of sampled JPEGs and video packets "
                        f"(default {Limits().evidence_seconds / 60:g})")
    g.add_argument("--evidence-mb", type=float, metavar="MB",
                   help=f"MiB of sampled JPEGs, and as much of video packets: up to twice this per session "
                        f"(default {Limits().evidence_bytes / 2**20:g})")
    p.add_argument("--config", "--cameras", type=Path, default=None, metavar="CAMERAS_TOML",
                   help="cameras file: named sessions started at boot, run with no client "
                        "(format: vision_stream/server/cameras.py)")
    p.add_argument("--grace", type=float, default=10.0, help="shutdown grace period, seconds")
    p.add_argument("--events", default="sqlite", metavar="STORE",
                   help="where events persist: sqlite (default: survives a restart, under --data-dir), "
                        "memory (lost at exit), or nats://HOST:PORT (JetStream, shared by a fleet)")
    p.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                   help="the SQLite event store's directory (default $XDG_DATA_HOME/vision-stream, "
                        "else ~/.local/share/vision-stream)")
    g = p.add_argument_group("fleet (with --events nats://: replicas share the cameras file; README 'Beyond one "
                             "machine')")
    g.add_argument("--replica-id", default="", metavar="NAME",
                   help="this replica's name in the leases bucket (default hostname-pid)")
    g.add_argument("--lease-ttl", type=float, default=6.0, metavar="SECONDS",
                   help="a camera lease outlives its owner this long (renewed every third of it; default 6)")
    g.add_argument("--fleet-live-sessions", type=int, default=0, metavar="N",
                   help="Live sessions the whole fleet runs at once (the project's quota; default 0: no limit)")
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
    _add_verify(p)
    _add_prices(p)


def _add_token(sub: Any) -> None:
    p = sub.add_parser("token", help="make bearer tokens for serve --auth-tokens", description=TOKEN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    token_sub = p.add_subparsers(dest="token_command", required=True)
    q = token_sub.add_parser("new", help="print a new token and its tokens-file lines", description=TOKEN_HELP,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("name", help="the token's name (1-64 letters, digits, '.', '_', '-'): its sessions' owner")
    q.add_argument("--rights", required=True,
                   help="comma-separated, among push, watch, subscribe, manage, snapshot, admin")


# A snapshot is one picture: no Live session (auto means REST with a key, else the offline analyzer).
SNAPSHOT_BACKENDS = ("auto", "rest", "local")

# Commands people reach for that are not this program's, and where they are.
_ELSEWHERE = {"bench": "the benchmarks are not part of the package: run `python -m bench --help` in a checkout"}


class OneLineErrors(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage
    block first, 20 lines for ``serve``) naming the problem and ``--help``;
    the exit code stays argparse's 2. Subparsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        for name, where in _ELSEWHERE.items():
            if f"invalid choice: '{name}'" in message:
                message = f"no command {name!r}: {where}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def port_number(text: str) -> int:
    """A TCP port, 0-65535 (0: the system picks a free one); gRPC would silently
    bind ``port % 65536`` (99999 -> 34463)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:20]!r} is not a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: 0-65535 (0 picks a free port)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(prog="vision-stream", description="Real-time multimodal analysis of video.")
    parser.add_argument("--version", action="version", version=f"vision-stream {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="run a file (or camera URL) through the pipeline and print events",
                       epilog=LEGEND, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a media file, or a camera URL")
    p.add_argument("--fast", action="store_true", help="as fast as possible (same sampling decisions)")
    p.add_argument("--loop", action="store_true", help="loop a file until Ctrl-C")
    p.add_argument("--server", default=None, help="HOST:PORT: push the file through a server's Stream RPC")
    _add_sampling(p)
    _add_analysis(p)
    _add_verify(p)
    _add_budget(p)
    _add_prices(p)
    _add_output(p)
    _add_connection(p)

    _add_serve(sub)

    p = sub.add_parser("watch", help="ask a server to pull a source (Watch RPC) and print its events",
                       epilog=LEGEND, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="path under the server's media root, a URL it allows, or a configured "
                                  "camera's name (follows that running session)")
    p.add_argument("--server", default=DEFAULT_SERVER, help=f"HOST:PORT (default {DEFAULT_SERVER}, serve's default)")
    p.add_argument("--fast", action="store_true")
    p.add_argument("--detach", action="store_true", help="leave the session running after this command ends")
    p.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    p.add_argument("--commentary-interval", type=float, default=0.0)
    _add_model_settings(p)
    _add_budget(p)
    _add_output(p)
    _add_connection(p)

    p = sub.add_parser("snapshot", help="analyse one image")
    p.add_argument("image", type=Path)
    p.add_argument("--prompt", default="", help="question about the image")
    p.add_argument("--server", default=None, help="HOST:PORT: use a server's AnalyzeSnapshot RPC")
    _add_analysis(p, backends=SNAPSHOT_BACKENDS)
    _add_output(p)
    _add_connection(p)

    p = sub.add_parser("frames", help="write exactly the JPEGs that would be sent to the model (SOURCE), "
                                      "or that a server session's model received (--session)")
    p.add_argument("source", nargs="?", default=None, help="a media file or camera URL, sampled here")
    p.add_argument("--out", type=Path, required=True, help="output directory (new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="first delete the JPEGs an earlier 'frames' run wrote in --out (nothing else)")
    _add_sampling(p)
    clip = sub.add_parser("clip", help="export an MP4 of a server session's media span (ExportClip): the "
                                       "source's packets remuxed, or its sampled JPEGs")
    from .evidence import add_evidence_arguments

    add_evidence_arguments(p, clip, f"HOST:PORT (default {DEFAULT_SERVER}, serve's default)", DEFAULT_SERVER)
    _add_connection(p)
    _add_connection(clip)

    p = sub.add_parser("emulate", help="run the Gemini Live + REST emulator on loopback")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=8765)
    p.add_argument("--fault", action="append", default=[],
                   help="knob words (repeatable): Live half e.g. 'refuse=503' 'fault=drop@5'; REST half (on "
                        "port+1) with a rest. prefix, e.g. 'rest.fault=429x3 rest.retry_delay=2'")
    p.add_argument("--tls-cert", type=Path, default=None,
                   help="PEM certificate: the Live half serves wss:// (the official SDK always connects with TLS)")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")

    _add_session_commands(sub)
    _add_token(sub)

    p = sub.add_parser("models", help="list the models the API key can use, and which speak Live")
    p.add_argument("--live-url", default=None, help="Live API base URL (env VISION_STREAM_LIVE_URL)")
    p.add_argument("--rest-url", default=None, help="REST API base URL (env VISION_STREAM_REST_URL)")
    p.add_argument("--all", action="store_true", help="also models that neither generate content nor speak Live")
    _add_api_version(p)
    _add_doctor(sub)
    return parser


def _add_doctor(sub: Any) -> None:
    """``doctor`` takes serve's flags that it checks (cli/doctor.py), with serve's defaults."""
    p = sub.add_parser("doctor", help="check this machine (codecs, API key, ports, media root, config); "
                                      "print what to fix")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=50051)
    p.add_argument("--http-port", type=port_number, default=8080)
    p.add_argument("--media-root", type=Path, default=None)
    p.add_argument("--config", "--cameras", type=Path, default=None, metavar="CAMERAS_TOML")
    p.add_argument("--auth-tokens", type=Path, default=None, metavar="TOKENS_TOML")
    p.add_argument("--live-url", default=None, help="Live API base URL (env VISION_STREAM_LIVE_URL)")
    p.add_argument("--rest-url", default=None, help="REST API base URL (env VISION_STREAM_REST_URL)")
    _add_api_version(p)
