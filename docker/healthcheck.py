"""Container health check through the standard gRPC health service (exit 0 = SERVING).

Which server it asks, first that applies:

1. ``HOST:PORT`` as the first argument;
2. the port the server in this container was started with: ``--port N`` (or
   ``--port=N``) on the command line of process ``--pid`` (default 1: the
   Dockerfile's exec-form ENTRYPOINT makes ``vision-stream`` PID 1), read from
   ``/proc/PID/cmdline``; so ``docker run ... serve --port 6000`` is checked on
   6000 with no second setting to keep in step;
3. 50051, ``vision-stream serve``'s default port.

Plaintext only: a server with ``--tls-cert`` needs its own HEALTHCHECK (the
README's Docker section shows one with grpcurl).
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_PORT = 50051


def port_from_cmdline(args: list[str]) -> int:
    """The value of ``--port`` in a command line (the last one wins, as in argparse), else the default."""
    port = DEFAULT_PORT
    for index, arg in enumerate(args):
        if arg == "--port" and index + 1 < len(args):
            port = int(args[index + 1])
        elif arg.startswith("--port="):
            port = int(arg.split("=", 1)[1])
    return port


def server_target(argv: list[str]) -> str:
    """HOST:PORT to check (see the module docstring)."""
    pid = "1"
    rest = list(argv)
    if "--pid" in rest:
        at = rest.index("--pid")
        pid = rest[at + 1]
        del rest[at:at + 2]
    if rest:
        return rest[0]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:  # not Linux, or no such process: serve's default
        cmdline = []
    return f"127.0.0.1:{port_from_cmdline(cmdline)}"


def main(argv: list[str]) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    target = server_target(argv)
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
        except grpc.RpcError as exc:
            print(f"unhealthy: {target}: {exc.code().name}", file=sys.stderr)
            return 1
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
