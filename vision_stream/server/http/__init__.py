"""The HTTP side of the server (aiohttp, same loop, same sessions, tokens and TLS as gRPC): see app.py."""

from .app import HttpServer, build_app, start_http

__all__ = ["HttpServer", "build_app", "start_http"]
