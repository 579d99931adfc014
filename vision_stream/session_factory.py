"""The one path from "run this source with this backend" to a started session.

Every place that starts a :class:`~vision_stream.pipeline.Session` comes
through :func:`open_session`: the CLI's local ``replay``, and the server's
``Stream`` (a client's pushed media), ``Watch`` (a file or URL the server
pulls) and configured cameras. The order is the same for all, and so is the
cleanup: once a source is open, a failure before the session is running
(another RPC took the last slot, a bad setting) closes it, so no source is
ever left open without a session to read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from .backends.factory import BackendOptions, make_backend, resolve_name
from .conditions.verify import rest_verifier
from .config import AudioPolicy, Limits, SamplingPolicy, SessionSettings
from .media.types import MediaSource
from .pipeline import Session

if TYPE_CHECKING:
    from .media.reconnecting import ConnectionOptions
    from .net import UrlPolicy


async def open_session(
    source: str | MediaSource,
    *,
    settings: SessionSettings,
    backend: str,
    options: BackendOptions,
    sampling: SamplingPolicy,
    limits: Limits,
    paced: bool,
    lossless: bool,
    audio: AudioPolicy | None = None,
    loop: bool = False,
    connection: ConnectionOptions | None = None,
    url_policy: UrlPolicy | None = None,
    start: Callable[[Session], object] | None = None,
) -> Session:
    """Make the backend, open ``source``, build the session and hand it to ``start``.

    ``source``: a spec for :func:`~vision_stream.media.open.open_source` (a
    file, camera URL or device; opened here, off the event loop, since FFmpeg
    probes the container while opening), or a source already made (a client's
    ``PushSource``), which this call then owns. ``audio``, ``loop``,
    ``connection`` and ``url_policy`` apply to a spec only.

    The backend is made first, so a refusal there (an unknown name, a
    missing API key) costs no source. ``start`` is the registry's (it may
    still refuse: capacity is checked again there, another call may have
    taken the slot while the source opened); without it the caller runs the
    session itself. Anything raised once the source is open closes it.
    A voice, language or tool the Live model lacks is refused here too
    (:func:`check_model_options`), before any source opens.
    """
    model = make_backend(backend, options)
    check_model_options(backend, options, settings)
    if isinstance(source, str):
        from .media.open import open_source

        source = await asyncio.to_thread(
            open_source, source, audio=audio, loop=loop, sample_interval=1.0 / sampling.fps, connection=connection,
            url_policy=url_policy, limits=limits,
        )
    try:
        session = Session(settings=settings, source=source, backend=model, sampling=sampling, limits=limits,
                          paced=paced, lossless=lossless)
        # Second opinions on ``verify`` conditions: a REST check over the session's evidence ring.
        session.conditions.verifier = rest_verifier(options, session.frames)
        if start is not None:
            start(session)
    except BaseException:
        source.close()  # opened, but no session runs it
        raise
    return session


def check_model_options(backend: str, options: BackendOptions, settings: SessionSettings) -> None:
    """Refuse a voice, language or built-in tool the session's Live model does not have.

    ``InvalidInputError`` (gRPC INVALID_ARGUMENT) naming the model and the
    value, raised while the RPC can still answer with a status: Google would
    only close the connection with 1007 once the session runs. Checked when
    the session goes to Live (``live``, or ``auto`` with a key); the other
    backends have no voice and no tools to check.
    """
    if resolve_name(backend, options) != "live":
        return
    from .backends.gemini_live.models import check_session

    check_session(options.live_model, settings)
