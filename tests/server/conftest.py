"""Fixtures: a real grpc.aio server on a free loopback port."""

from grpc_harness import media_root, served

__all__ = ["media_root", "served"]
