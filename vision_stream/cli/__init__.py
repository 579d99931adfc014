"""The ``vision-stream`` command: serve, replay, watch, sessions, follow, stop, snapshot, frames, clip,
emulate, models, token.

- :mod:`.parser` - every command, flag and help text;
- :mod:`.args` - flags and the environment to configuration objects;
- :mod:`.commands` - one function per command, and the table :func:`main` dispatches on;
- :mod:`.sessions` - the commands for a server's running sessions (sessions, follow, stop, watch CAMERA);
- :mod:`.evidence` - a session's evidence: frames --session (GetFrames), clip (ExportClip);
- :mod:`.render` - printing events and snapshots: JSON lines or the readable view.

The environment is read at this entry point, once (API keys, URLs,
VISION_STREAM_TOKEN), and nowhere deeper. Errors print one line and exit
non-zero; no tracebacks for expected failures. The benchmarks are not part of
the package: run them from a checkout with ``python -m bench``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

    from .commands import Command

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "main"]

# Exit codes: 1 a command or session failed, 2 a usage error (argparse's own
# code too), 130 interrupted (128 + SIGINT, what a shell reports for Ctrl-C).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The ``vision-stream`` parser (:mod:`.parser`; imported here on first use, see :func:`main`)."""
    from .parser import build_parser as build

    return build()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0, 1 error, 2 usage, 130 interrupted).

    This module imports only the standard library at import time: everything
    else (gRPC, PyAV, OpenCV: about half a second) is imported inside the
    ``try`` below, so a Ctrl-C during start-up is an exit code, not a
    KeyboardInterrupt traceback from the middle of an import.
    """
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _run(argv: list[str]) -> int:
    import asyncio
    import logging

    from ..redact import install_log_redaction, scrub

    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    secrets = [os.environ.get("GEMINI_API_KEY", ""), os.environ.get("GOOGLE_API_KEY", ""),
               os.environ.get("VISION_STREAM_TOKEN", ""), getattr(args, "token", None) or ""]
    install_log_redaction(*secrets)  # every log line, httpx's and websockets' own included
    try:
        return asyncio.run(_dispatch(args))
    except BrokenPipeError:  # an OSError: before `except OSError` below, or it is never reached
        raise
    except Exception as exc:  # expected failures become one line; any other is a bug: a traceback
        message, code = _one_line(exc, getattr(args, "server", None) or "the server")
        if message is None:
            raise
        print(f"vision-stream: error: {scrub(message, *secrets)}", file=sys.stderr)
        return code


async def _dispatch(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from .args import backend_options_from
    from .commands import COMMANDS

    command: Command | None = COMMANDS.get(args.command)
    if command is None:  # argparse refuses unknown commands first; a parser/table mismatch lands here
        raise UsageError(f"unknown command {args.command}")
    if getattr(args, "prices", None) is not None:
        from ..pricing import use_prices

        use_prices(args.prices)  # a bad file is a usage error now, not mid-session
    return await command(args, backend_options_from(args, os.environ))


def _one_line(exc: BaseException, server: str) -> tuple[str | None, int]:
    """The one line and exit code for an expected failure; (None, 1) for a bug (a traceback is right).

    Our errors carry their message; a gRPC status is translated by
    :func:`rpc_error_text` (C-core wording such as
    "failed to connect to all addresses" becomes plain words); an OSError
    shows its strerror, never the ``[Errno N]`` prefix."""
    import grpc

    from ..errors import UsageError, VisionStreamError

    if isinstance(exc, VisionStreamError):
        return exc.message, EXIT_USAGE if isinstance(exc, UsageError) else EXIT_ERROR
    if isinstance(exc, grpc.aio.AioRpcError):
        return rpc_error_text(exc, server), EXIT_ERROR
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or type(exc).__name__}", EXIT_ERROR
    return None, EXIT_ERROR


def _quiet_broken_pipe() -> int:
    """``vision-stream ... | head``: the reader left, so stop quietly, exit code 0.

    Python's documentation (signal module, "Note on SIGPIPE") recommends
    pointing stdout at devnull, so the flush at interpreter exit cannot raise
    a second BrokenPipeError ("Exception ignored ... Broken pipe"). Its example
    exits 1; we exit 0, as the reader got everything it asked for and
    ``set -o pipefail`` scripts should not fail on ``| head`` (a process
    killed by SIGPIPE would report 141).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or not a file descriptor (captured)
        pass
    return 0


def rpc_error_text(exc: grpc.aio.AioRpcError, server: str) -> str:
    """``CODE: details``, with the gRPC C core's connection wording in plain words.

    A refused, unresolvable or unreachable ``--server`` is reported by the C
    core as UNAVAILABLE with its internal text ("failed to connect to all
    addresses; last error: UNKNOWN: ipv4:...: Failed to connect to remote
    host: Connection refused", "errors resolving ...: Domain name not found");
    a write after the server ended the call is INTERNAL "Internal error from
    Core" (grpc#36066). Statuses our server sets pass through as they are.
    """
    import grpc

    details = exc.details() or ""
    code = exc.code()
    if code is grpc.StatusCode.UNAVAILABLE:
        for pattern, words in _CONNECT_FAILURES:
            if re.search(pattern, details, re.IGNORECASE):
                return words.format(server=server, host=server.rpartition(":")[0].strip("[]") or server)
    if code is grpc.StatusCode.INTERNAL and "Internal error from Core" in details:
        return f"the server at {server} ended the call while we were still sending (rerun with -v for its reason)"
    if code.name in _PLAIN_VERDICTS and details:
        return details  # our server's verdict on the input is already a sentence naming the problem
    return f"{code.name}: {details}"


# Statuses whose details (set by our server: status.py) say in words what was wrong with the
# input: the code name in front adds nothing for a reader ("FAILED_PRECONDITION: cannot open ...").
_PLAIN_VERDICTS = frozenset({"FAILED_PRECONDITION", "INVALID_ARGUMENT"})

# gRPC C-core connection failures (UNAVAILABLE details) -> one plain sentence.
_CONNECT_FAILURES = (
    (r"resolv|domain name not found|dns", "cannot resolve host {host} (--server {server}): check the name"),
    (r"connection refused",
     "connection refused by {server}: is `vision-stream serve` running there, on that port?"),
    (r"timeout|timed out|deadline|no route|unreachable",
     "no route to {server} or the connection timed out: check the address and the network"),
    (r"failed to connect", "cannot connect to {server}: check the address and that the server runs"),
)
