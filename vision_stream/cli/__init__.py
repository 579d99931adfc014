"""The ``vision-stream`` command: serve, replay, watch, sessions, follow, stop, snapshot, frames, emulate,
models, token.

- :mod:`.parser` - every command, flag and help text;
- :mod:`.args` - flags and the environment to configuration objects;
- :mod:`.commands` - one function per command, and the table :func:`main` dispatches on;
- :mod:`.sessions` - the commands for a server's running sessions (sessions, follow, stop, watch CAMERA);
- :mod:`.render` - printing events and snapshots: JSON lines or the readable view.

The environment is read at this entry point, once (API keys, URLs,
VISION_STREAM_TOKEN), and nowhere deeper. Errors print one line and exit
non-zero; no tracebacks for expected failures. The benchmarks are not part of
the package: run them from a checkout with ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import grpc

from ..errors import UsageError, VisionStreamError
from ..redact import install_log_redaction, scrub
from .args import backend_options_from
from .commands import COMMANDS, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE
from .parser import build_parser

__all__ = ["build_parser", "main"]


async def _dispatch(args: argparse.Namespace) -> int:
    command = COMMANDS.get(args.command)
    if command is None:  # argparse refuses unknown commands first; a parser/table mismatch lands here
        raise UsageError(f"unknown command {args.command}")
    return await command(args, backend_options_from(args, os.environ))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0, 1 error, 2 usage, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    secrets = [os.environ.get("GEMINI_API_KEY", ""), os.environ.get("GOOGLE_API_KEY", ""),
               os.environ.get("VISION_STREAM_TOKEN", ""), getattr(args, "token", None) or ""]
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
