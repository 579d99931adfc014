"""From parsed flags and the environment to the configuration objects the commands use.

The environment is read here and in :func:`vision_stream.cli.main`, once (API
keys, URLs, VISION_STREAM_TOKEN), and nowhere deeper. A flag left at None was
not given: the dataclass default applies.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ..backends.factory import BackendOptions
from ..client import ClientTls
from ..conditions.model import Condition, check_conditions, parse_condition_arg
from ..config import SamplingPolicy, SessionSettings
from ..redact import Secret

__all__ = ["backend_options_from", "connection_from", "given", "model_settings_from", "sampling_from_args",
           "session_settings_from"]


def given(**values: Any) -> dict[str, Any]:
    """The values a user gave (None = not given), for a dataclass that holds the defaults."""
    return {name: value for name, value in values.items() if value is not None}


def sampling_from_args(args: argparse.Namespace) -> SamplingPolicy:
    return SamplingPolicy().updated(fps=args.fps, max_fps=args.max_fps, scene_threshold=args.scene_threshold,
                                    max_side=args.max_side, jpeg_quality=args.quality)


def backend_options_from(args: argparse.Namespace, env: Mapping[str, str]) -> BackendOptions:
    key = env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY") or ""
    # An empty --model / --snapshot-model, or --rest-rpm 0, means "not given".
    return BackendOptions(
        api_key=Secret(key) if key else None,
        live_url=getattr(args, "live_url", None) or env.get("VISION_STREAM_LIVE_URL") or None,
        rest_url=getattr(args, "rest_url", None) or env.get("VISION_STREAM_REST_URL") or None,
        **given(live_model=getattr(args, "model", None) or None,
                snapshot_model=getattr(args, "snapshot_model", None) or None,
                verify_model=getattr(args, "verify_model", None) or None,
                rest_requests_per_minute=getattr(args, "rest_rpm", None) or None,
                api_version=getattr(args, "api_version", None),
                stall_timeout=getattr(args, "stall_timeout", None),
                keepalive=getattr(args, "keepalive", None)),
    )


def session_settings_from(args: argparse.Namespace, session_id: str, source: str) -> SessionSettings:
    """The settings of a session the CLI runs itself (``replay`` without ``--server``)."""
    return SessionSettings(session_id=session_id, source_description=source, persona=args.persona,
                           model=args.model or "",
                           **given(commentary_interval=args.commentary_interval, language=args.language),
                           **model_settings_from(args))


def model_settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """``voice=``, ``media_resolution=``, ``tools=`` as given (``--voice``, ``--media-resolution``,
    ``--tool``), for SessionSettings and the client's SessionConfig alike."""
    return given(voice=getattr(args, "voice", None), media_resolution=getattr(args, "media_resolution", None),
                 tools=tuple(getattr(args, "tools", None) or ()) or None,
                 max_cost_per_hour=getattr(args, "max_cost_per_hour", None),
                 max_tokens_per_hour=getattr(args, "max_tokens_per_hour", None),
                 conditions=conditions_from(args) or None)


def conditions_from(args: argparse.Namespace) -> tuple[Condition, ...]:
    """``--condition`` values (conditions/model.py: parse_condition_arg), checked as a set."""
    return check_conditions(parse_condition_arg(text, i) for i, text in enumerate(getattr(args, "conditions", None)
                                                                                   or ()))


def connection_from(args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """``token=`` and ``tls=`` for vision_stream.client, from the flags and VISION_STREAM_TOKEN."""
    raw = getattr(args, "token", None) or env.get("VISION_STREAM_TOKEN") or ""
    ca, cert, key = (getattr(args, name, None) for name in ("tls_ca", "tls_client_cert", "tls_client_key"))
    tls: bool | ClientTls = getattr(args, "tls", False)
    if ca or cert or key:
        tls = ClientTls(root_ca=ca, cert=cert, key=key)
    return {"token": Secret(raw) if raw else None, "tls": tls}
